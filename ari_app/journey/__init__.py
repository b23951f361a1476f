"""The caller's journey: language menu, entity menu tree, hand-over to the queue."""

"""A caller and an agent bridged: the conversation, blind and consult transfers."""

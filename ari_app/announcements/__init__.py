"""Runtime announcements: an emergency or holiday message an operator sets while
the center runs, global (before the menu) or per entity (before its queue).

store: Redis, shared by every instance and site; render: text to speech or an
uploaded recording to the sound format Asterisk plays; cache: each app instance's
copy of what is set, with the sound files on its own disk; play: the hooks the
journey and the queue call; service: validation and auditing for the CLI and API.
docs/announcements.md has the whole story.
"""

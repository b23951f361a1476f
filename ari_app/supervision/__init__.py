"""Supervision and quality: call recording and its retention, supervisors listening,
whispering and barging in through ARI snoop channels, and the post-call survey
(docs/supervision.md)."""

"""Queued callback (virtual hold): a waiting caller keeps their place and is called back."""

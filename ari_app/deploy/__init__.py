"""Deploying Hotline 109: render a site's Asterisk config, verify it on a throwaway Asterisk."""

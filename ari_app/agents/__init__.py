"""Agents: the roster from config, their live state in Redis, their SIP accounts."""

"""Hotline 109: the ARI application behind the government contact center's 109."""

__version__ = "0.1.0"

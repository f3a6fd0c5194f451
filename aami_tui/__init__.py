"""aami-tui: a guided console for the AAMI Config Server's schema migration."""

__version__ = "0.1.0"

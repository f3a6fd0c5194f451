"""Restore from a backup (the guide's rollback procedure)."""

from __future__ import annotations

from textual.screen import Screen


class RestoreScreen(Screen):
    pass

"""Masking a password in what is written or said: where a password stands, never every occurrence of its text.

Replacing every occurrence of the password's text destroyed other words (DB_PASSWORD=e turned "connection" into
"conn********ction", before the error was even classified) and, with the guide's DB_USER=postgres
DB_PASSWORD=postgres, replaced the user name in the report, which told its reader the password. ``Mask`` hides:

- any password in a conninfo (``password=…``), a URI (``scheme://user:…@``) and SQL's ``PASSWORD '…'``, whoever's
  it is: a password can stand there and nothing else does;
- this run's password as a whole word (not inside a longer word), in the forms a report writes it: as typed, as
  JSON escapes it, and with ``|`` as a Markdown table cell writes it (``/``). That is the text the operator typed
  (a password pasted into the inspect pane) that the server echoes back in its error;
- except when the password is one of the run's public names (the user, the database, the host; ``postgres``):
  then its bare occurrences are the name, and only the places above are masked.
"""

from __future__ import annotations

import json
import os
import re

HIDDEN = "********"

# password=value or password='value' (libpq quotes with \' and \\ inside), PGPASSWORD=…, DB_PASSWORD=…
_CONNINFO = re.compile(r"(?i)(password[ \t]*=[ \t]*)('(?:[^'\\\n]|\\.)*'|[^\s'\",;)]+)")
# scheme://user:password@  (the password up to the last @ before a space or a quote)
_URI = re.compile(r"(://[^\s/@:'\"]*:)([^\s'\"]*)@")
# SQL's CREATE/ALTER ROLE … PASSWORD 'value' ('' inside a literal), and E'…'
_SQL = re.compile(r"(?i)(PASSWORD\s+E?')((?:[^'\n]|'')*)'")
# Each pattern runs only on a text that holds its literal (a plain substring test): a report of tens of MB is
# masked part by part in the report thread, and a regex scan of every part held the interpreter (and so the
# console's loop) ~200 ms per 1.6 MB; the substring tests cost ~2 ms.


# Around a whole word: what separates words in a message, a report's JSON or Markdown, or SQL (a trailing "." ends
# a sentence: "… hunter2." is the word, "e.g." is not "e").
_EDGE = r"""\s'"`()\[\]{},;=:|"""
_AFTER = f"(?=[{_EDGE}]|$|\\.(?:[{_EDGE}]|$))"


class Mask:
    """``Mask(password, public_names)(text)``: the text with every password in it replaced by ``********``."""

    def __init__(self, password: str | None, public: tuple[str, ...] | list[str] | set[str] = ()):
        self.password = password or None
        forms: list[str] = []
        if self.password and self.password not in {*public, "postgres"}:
            for f in (self.password, json.dumps(self.password)[1:-1], self.password.replace("|", "/")):
                if f not in forms:
                    forms.append(f)
        self.forms = tuple(sorted(forms, key=len, reverse=True))  # masked as whole words (none: a public name)
        # One pattern per form, the literal first (the regex engine then jumps from one occurrence to the next
        # instead of trying every position), the word's start checked behind it.
        self._bare = [re.compile(f"{re.escape(f)}(?<![^{_EDGE}]{re.escape(f)}){_AFTER}") for f in self.forms]

    @classmethod
    def of(cls, settings) -> Mask:
        """The mask of a connection's password (the one given, else PGPASSWORD, which libpq reads); its user,
        database and host are public names."""
        eff = settings.effective()
        return cls(settings.password or os.environ.get("PGPASSWORD"),
                   tuple(str(eff[k]) for k in ("user", "dbname", "host") if eff.get(k)))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if "password" in text.lower():
            text = _CONNINFO.sub(lambda m: m.group(1) + HIDDEN, text)
            text = _SQL.sub(lambda m: m.group(1) + HIDDEN + "'", text)
        if "://" in text:
            text = _URI.sub(lambda m: m.group(1) + HIDDEN + "@", text)
        for f, bare in zip(self.forms, self._bare, strict=True):
            if f in text:
                text = bare.sub(HIDDEN, text)
        return text

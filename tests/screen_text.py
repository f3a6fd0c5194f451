"""Plain text of a Textual SVG screenshot, row by row (for layout assertions)."""

from __future__ import annotations

import html
import re


def svg_text(svg: str) -> str:
    rows: dict[float, list[str]] = {}
    for y, t in re.findall(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append(html.unescape(t).replace("\xa0", " "))
    return "\n".join("".join(v) for _, v in sorted(rows.items()))

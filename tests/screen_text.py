"""Plain text of a Textual SVG screenshot, row by row (for layout assertions)."""

from __future__ import annotations

import html
import re


def svg_text(svg: str) -> str:
    rows: dict[float, list[str]] = {}
    for y, t in re.findall(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append(html.unescape(t).replace("\xa0", " "))
    return "\n".join("".join(v) for _, v in sorted(rows.items()))


def region_text(app, selector: str) -> str:
    """What a widget shows (its rendered lines, border included), whatever it renders with."""
    from textual.geometry import Region

    w = app.screen.query_one(selector)
    strips = w.render_lines(Region(0, 0, w.outer_size.width, w.outer_size.height))
    return "\n".join(strip.text for strip in strips)

"""HTML pieces shared by every page: escaping, links into the archive, the page frame.

Every text that came from the network goes through :func:`esc`; every link is relative and
percent-encoded (:func:`href`), so no name can open a tag, an attribute or a scheme.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute: the stdlib's ``html.escape(quote=True)``,
    then control characters shown as U+FFFD. ``isprintable`` spares almost every text the
    search (a catalog escapes ten texts a file; 2x faster than a ``str.translate`` table)."""
    text = html.escape(str(value), quote=True)
    return text if text.isprintable() else _CONTROL.sub("\ufffd", text)


def href(path: str) -> str:
    """A relative link to ``path`` (``/``-separated), percent-encoded, escaped for an attribute."""
    return esc(quote(path, safe="/", errors="surrogatepass"))


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def badge(state: str) -> str:
    return f'<span class="badge st-{esc(state)}">{esc(state)}</span>'


def frame(title: str, body: str, up: str, *, scripts: tuple[str, ...] = ()) -> bytes:
    """A whole page; ``up`` leads from the page's folder to ``catalog/`` ("" or "../")."""
    tags = "".join(f'<script src="{up}{s}"></script>' for s in scripts)
    text = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title>"
            f'<link rel="stylesheet" href="{up}static/catalog.css">{tags}</head>\n'
            f'<body><header><a class="home" href="{up}index.html">assetvault catalog</a>'
            f"</header><main>\n{body}\n</main></body></html>\n")
    return text.encode("utf-8", "replace")


def nav(prev: str | None, next_: str | None, label: str) -> str:
    """Previous / next links between the pages of one list."""
    parts = [f'<a rel="prev" href="{href(prev)}">&larr; previous</a>' if prev else "",
             f"<span>{esc(label)}</span>",
             f'<a rel="next" href="{href(next_)}">next &rarr;</a>' if next_ else ""]
    return f'<nav class="pager">{" ".join(p for p in parts if p)}</nav>'

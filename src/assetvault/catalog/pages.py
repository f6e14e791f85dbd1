"""The pages of one group: its records, each with files, previews, key fields and history.

Pages live in ``catalog/pages/``; from there the archive's root is ``../../``. Records come
a page at a time (see :mod:`.build`), so a page is bounded whatever the group's size.
"""

from __future__ import annotations

from .markup import badge, esc, frame, href, nav, size_text
from .model import FileEntry, Record
from .records import HISTORY_NAME
from .renderer import Previews, preview_key

ROOT = "../../"  # from catalog/pages/ to the archive's root
UP = "../"  # from catalog/pages/ to catalog/
RECORD_FILES = 200  # files shown per record; the rest are counted (and in the search index)


def page_name(group_digest: str, number: int) -> str:
    return f"pages/{group_digest}-{number}.html"


def group_page(title: str, records: list[Record], previews: Previews,
               pager: tuple[str | None, str | None, str]) -> bytes:
    """One page of a group's records; ``pager`` is (previous, next, label), names relative
    to ``catalog/``."""
    prev, next_, label = pager
    links = nav(prev and prev.removeprefix("pages/"), next_ and next_.removeprefix("pages/"),
                label)
    body = (f"<h1>{esc(title)}</h1>{links}\n"
            + "\n".join(record_html(r, previews) for r in records) + f"\n{links}")
    return frame(title, body, UP)


def record_html(record: Record, previews: Previews) -> str:
    ids = [f"id {esc(record.ident)}"]
    if record.reference:
        ids.append(f'reference <span class="ref">{esc(record.reference)}</span>')
    ids.append(f"<code>{esc(record.key)}</code>")
    fields = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in record.fields)
    files = "".join(file_html(f, previews) for f in record.files[:RECORD_FILES])
    if len(record.files) > RECORD_FILES:
        files += (f'<p class="none">and {len(record.files) - RECORD_FILES} more files, in '
                  f"<code>data/{esc(record.key)}/</code></p>")
    doc = ""
    if record.doc is not None and record.doc.archived and record.doc.path:
        doc = f' <a class="doc" href="{href(ROOT + "data/" + record.doc.path)}">asset.json</a>'
    return (f'<section class="record st-{esc(record.state)}" id="{record.anchor}">'
            f'<h2><span class="name">{esc(record.name)}</span> {badge(record.state)}</h2>'
            f'<p class="ids">{" · ".join(ids)}{doc}</p>'
            + (f'<dl class="fields">{fields}</dl>' if fields else "")
            + (f'<div class="files">{files}</div>' if files else '<p class="none">no files</p>')
            + _history(record.history) + "</section>")


def file_html(entry: FileEntry, previews: Previews) -> str:
    link = href(ROOT + "data/" + entry.path) if entry.archived and entry.path else None
    if entry.sha256 and entry.archived and previews.has(entry.sha256):
        src = href(UP + preview_key(entry.sha256, "png"))
        picture = (f'<img class="preview" src="{src}" alt="preview of {esc(entry.name)}" '
                   'loading="lazy">')
    else:
        picture = f'<div class="placeholder"><span>{esc(previews.reason(entry))}</span></div>'
    if link:
        picture = f'<a href="{link}">{picture}</a>'
    name = f'<a href="{link}">{esc(entry.name)}</a>' if link else esc(entry.name)
    error = f'<div class="error">{esc(entry.error)}</div>' if entry.error else ""
    return (f'<figure class="file st-{esc(entry.status)}">{picture}<figcaption>'
            f'<div class="fname">{name}</div><div class="meta">{esc(entry.format.upper())} · '
            f"{size_text(entry.size)} · {badge(entry.status)}</div>{error}</figcaption></figure>")


def _history(keys: list[str]) -> str:
    if not keys:
        return ""
    items = "".join(f'<li><a href="{href(ROOT + k)}">{esc(_version(k))}</a></li>'
                    for k in keys[:200])
    return (f'<details class="history"><summary>earlier versions ({len(keys)})</summary>'
            f"<ul>{items}</ul></details>")


def _version(key: str) -> str:
    """``original.png, replaced 2026-01-02 03:04:05 UTC, was sha256 0123456789abcdef...``"""
    name = key.rpartition("/")[2]
    match = HISTORY_NAME.fullmatch(name)
    if match is None:
        return name
    s = match["stamp"]
    when = f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[9:11]}:{s[11:13]}:{s[13:15]} UTC"
    return f"{match['stem']}{match['suffix'] or ''}, replaced {when}, was sha256 {match['sha']}…"

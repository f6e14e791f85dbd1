"""The overview (``catalog/index.html``): jobs, counts per state, bytes, last runs, failures,
a chart of the archive's growth per run, the search box and the first groups.

Every figure is an aggregate SQLite computes (a GROUP BY), so the page costs the same for a
hundred items as for a million.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from .markup import badge, esc, frame, href, size_text
from .model import STATES, GroupSummary

RUNS_SHOWN = 10
FAILURES_SHOWN = 50
CHART_RUNS = 60


@dataclass(slots=True)
class JobFigures:
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0  # archived: complete and gone files


def job_figures(db: sqlite3.Connection) -> list[JobFigures]:
    """Files per job and state, and the bytes archived."""
    found: dict[str, JobFigures] = {}
    for job, status, count, size in db.execute(
            "SELECT job, status, COUNT(*), COALESCE(SUM(size), 0) FROM items "
            "WHERE kind = 'file' GROUP BY job, status ORDER BY job"):
        figures = found.setdefault(str(job), JobFigures(str(job)))
        figures.counts[str(status)] = int(count)
        if status in ("complete", "gone"):
            figures.bytes += int(size)
    return list(found.values())


def growth(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """(run id, bytes archived by the end of it) for the last runs, from their reports."""
    per_run: list[tuple[int, int]] = []
    for run_id, report in db.execute("SELECT id, report FROM runs ORDER BY id"):
        try:
            jobs = json.loads(report or "{}").get("jobs") or []
            added = sum(int(j.get("bytes") or 0) for j in jobs if isinstance(j, dict))
        except (ValueError, TypeError, AttributeError):
            added = 0
        per_run.append((int(run_id), added))
    total, points = 0, []
    for run_id, added in per_run:
        total += added
        points.append((run_id, total))
    return points[-CHART_RUNS:]


def chart(points: list[tuple[int, int]]) -> str:
    """An inline SVG bar chart: total bytes after each run."""
    if not points:
        return "<p>no runs yet</p>"
    width, height, pad = 640, 160, 24
    top = max(total for _, total in points) or 1
    step = (width - 2 * pad) / len(points)
    bars = []
    for i, (run_id, total) in enumerate(points):
        h = (height - 2 * pad) * total / top
        bars.append(f'<rect x="{pad + i * step + 1:.1f}" y="{height - pad - h:.1f}" '
                    f'width="{max(step - 2, 1):.1f}" height="{h:.1f}">'
                    f"<title>run {run_id}: {esc(size_text(total))}</title></rect>")
    labels = (f'<text x="{pad}" y="{height - 8}">run {points[0][0]}</text>'
              f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">run {points[-1][0]}'
              f'</text><text x="{pad}" y="14">{esc(size_text(top))}</text>')
    return (f'<svg class="chart" role="img" aria-label="archive size per run" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">{"".join(bars)}{labels}</svg>')


def overview(db: sqlite3.Connection, groups: list[GroupSummary], more: str | None,
             built: str) -> bytes:
    figures = job_figures(db)
    body = [_cards(figures), _search_form(), "<h2>Jobs</h2>", _jobs_table(figures),
            "<h2>Archive growth per run</h2>", chart(growth(db)),
            "<h2>Organizations and owners</h2>", groups_table(groups, "")]
    if more:
        body.append(f'<p><a href="{href(more)}">all organizations and owners &rarr;</a></p>')
    body += ["<h2>Last runs</h2>", _runs(db), _failures(db),
             f'<p class="meta">built {esc(built)}</p>']
    return frame("assetvault catalog", "<h1>Archive overview</h1>" + "\n".join(body), "",
                 scripts=("static/search.js", "search/meta.js"))


def _cards(figures: list[JobFigures]) -> str:
    totals = {s: sum(f.counts.get(s, 0) for f in figures) for s in STATES}
    size = sum(f.bytes for f in figures)
    cards = [f'<div class="card"><b>{size_text(size)}</b>archived</div>']
    cards += [f'<div class="card"><b>{totals[s]}</b>{badge(s)}</div>' for s in reversed(STATES)]
    return f'<div class="cards">{"".join(cards)}</div>'


def _search_form() -> str:
    states = "".join(f'<option value="{s}">{s}</option>' for s in reversed(STATES))
    return ('<form id="search" class="search" autocomplete="off">'
            '<input id="q" type="search" placeholder="name, reference, id" aria-label="search">'
            '<input id="format" list="formats" placeholder="format (dst, png...)" '
            'aria-label="format"><datalist id="formats"></datalist>'
            f'<select id="state" aria-label="state"><option value="">any state</option>{states}'
            '</select><button type="submit">search</button></form>'
            '<div id="count" class="meta"></div><ol id="results"></ol>')


def _jobs_table(figures: list[JobFigures]) -> str:
    head = "".join(f"<th>{s}</th>" for s in reversed(STATES))
    rows = "".join(
        f"<tr><td>{esc(f.job)}</td>"
        + "".join(f'<td class="n">{f.counts.get(s, 0)}</td>' for s in reversed(STATES))
        + f'<td class="n">{size_text(f.bytes)}</td></tr>' for f in figures)
    return f"<table><tr><th>job</th>{head}<th>bytes</th></tr>{rows}</table>"


def groups_table(groups: list[GroupSummary], up: str) -> str:
    """Groups with their record counts per state; ``up`` leads to ``catalog/``."""
    rows = "".join(
        f'<tr><td><a href="{href(up + g.first_page)}">{esc(g.title)}</a></td>'
        f'<td class="n">{g.records}</td><td>'
        + " ".join(f"{badge(s)} {n}" for s, n in g.states) + "</td></tr>" for g in groups)
    return f"<table><tr><th>group</th><th>records</th><th>states</th></tr>{rows}</table>"


def _runs(db: sqlite3.Connection) -> str:
    rows = "".join(
        f'<tr><td class="n">#{i}</td><td>{esc(s)}</td><td>{esc(f or "-")}</td>'
        f'<td class="n">{esc("-" if c is None else c)}</td></tr>'
        for i, s, f, c in db.execute(
            "SELECT id, started, finished, exit_code FROM runs ORDER BY id DESC LIMIT ?",
            (RUNS_SHOWN,)))
    return ("<table><tr><th>run</th><th>started</th><th>finished</th><th>exit</th></tr>"
            f"{rows}</table>")


def _failures(db: sqlite3.Connection) -> str:
    failed = db.execute("SELECT job, key, error FROM items WHERE status = 'failed' "
                        "ORDER BY job, key LIMIT ?", (FAILURES_SHOWN,)).fetchall()
    if not failed:
        return ""
    rows = "".join(f"<tr><td>{esc(j)}</td><td><code>{esc(k)}</code></td><td>{esc(e or '')}</td>"
                   "</tr>" for j, k, e in failed)
    return (f"<h2>Failures (first {FAILURES_SHOWN})</h2><table><tr><th>job</th><th>item</th>"
            f"<th>error</th></tr>{rows}</table>")

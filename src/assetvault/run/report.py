"""The end of a run, for people (a summary table) and for scripts (the JSON report, SPEC §6)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from ..models import RunResult


def iso(result_time: datetime | None) -> str | None:
    return None if result_time is None else result_time.isoformat(timespec="seconds")


def report_dict(result: RunResult) -> dict[str, object]:
    """The JSON report: every URL in it is already redacted."""
    return {
        "started": iso(result.started),
        "finished": iso(result.finished),
        "exit_code": result.exit_code,
        "interrupted": result.interrupted,
        "fatal": result.fatal,
        "jobs": [
            {
                "name": s.name,
                "found": s.found,
                "downloaded": s.downloaded,
                "up_to_date": s.up_to_date,
                "pending": s.pending,
                "failed": s.failed_total,
                "failed_items": s.failed,
                "listing_failures": s.listing_failures,
                "gone": s.gone,
                "bytes": s.bytes,
                "seconds": round(s.seconds, 3),
                "error": s.fatal,
            }
            for s in result.stats
        ],
        "failures": [
            {"job": f.job, "key": f.key, "url": f.url, "error": f.error} for f in result.failures
        ],
        **({} if result.worker_cpu is None else {"workers": [
            {"address": address, "cpu_seconds": round(cpu, 3)}
            for address, cpu in sorted(result.worker_cpu.items())]}),
    }


def report_text(result: RunResult) -> str:
    """The JSON report as written."""
    return json.dumps(report_dict(result), indent=2, ensure_ascii=False) + "\n"


def write_report(text: str, target: Path) -> None:
    """Write the report where the user asked (``--report``: outside the archive), atomically."""
    if target.is_symlink() or (target.exists() and not target.is_file()):
        # A link, a FIFO, /dev/stdout: write through it, never replace it.
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def summary_table(result: RunResult) -> str:
    """One row per job: found, downloaded, up to date, pending, failed, bytes, seconds, MB/s."""
    head = ("job", "found", "downloaded", "up to date", "pending", "failed", "MB", "seconds",
            "MB/s")
    rows = [head]
    for s in result.stats:
        rate = s.bytes / 1e6 / s.seconds if s.seconds > 0 else 0.0
        failed = s.failed_total
        rows.append((s.name, str(s.found), str(s.downloaded), str(s.up_to_date), str(s.pending),
                     str(failed) + ("*" if s.fatal else ""), f"{s.bytes / 1e6:.1f}",
                     f"{s.seconds:.1f}", f"{rate:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]
    for s in result.stats:
        if s.fatal:
            lines.append(f"* {s.name}: {s.fatal}")
    return "\n".join(lines)

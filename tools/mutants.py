"""Hand-made mutants of the integrity paths: each breaks one promise; the suite must go red.

    python tools/mutants.py                  # every mutant, each against its tests
    python tools/mutants.py --only resume    # the mutants whose name starts with "resume"
    python tools/mutants.py --list

A mutant is one exact replacement in one file. The file is restored whatever happens (the
original is kept in memory and written back in a ``finally``). A survivor is either a missing
test or an equivalent mutant (another check catches the same breakage): say which in the
commit or the closing note. Not part of CI: the whole list takes several minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = "src/assetvault/"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


HOSTILE = "tests/transfer/test_hostile_upstream.py"
FETCH_TESTS = (HOSTILE, "tests/transfer/test_resume.py",
               "tests/transfer/test_fetch.py")

MUTANTS = (
    # resume: a 206 continues the same representation, or the file starts over
    Mutant("resume-no-validator", SRC + "transfer/resume.py",
           "    changed = _changed_validator(held, headers)\n    if changed:",
           "    changed = None\n    if changed:", FETCH_TESTS),
    Mutant("resume-no-total", SRC + "transfer/resume.py",
           "    if held.total is not None and total != held.total:", "    if False:", FETCH_TESTS),
    Mutant("resume-unknown-total-continues", SRC + "transfer/resume.py",
           '    if total is None:\n        return Restart("the resumed range names no total size")',
           "    if total is None:\n        return Start(offset, None)", FETCH_TESTS),
    Mutant("resume-416-complete", SRC + "transfer/resume.py",
           '        return Restart("HTTP 416 on resume")', "        return Start(offset, offset)",
           FETCH_TESTS),
    Mutant("resume-unasked-206-whole", SRC + "transfer/resume.py",
           '    return Refuse("the server sent part of the file (HTTP 206) to a request for all '
           'of it")', "    return Start(0, None)", FETCH_TESTS),
    Mutant("resume-restart-keeps-partial", SRC + "transfer/fetch.py",
           "await asyncio.to_thread(partial.discard)\n                    continue",
           "continue", FETCH_TESTS),
    # fetch: checks before anything is placed
    Mutant("fetch-no-size-check", SRC + "transfer/fetch.py",
           "    if total is not None and digests.size != total:", "    if False:", FETCH_TESTS),
    Mutant("fetch-no-md5-check", SRC + "transfer/fetch.py",
           "    if md5 is not None and digests.md5 != md5:", "    if False:", FETCH_TESTS),
    Mutant("fetch-decompress", SRC + "transfer/fetch.py",
           "                                          decompress=False) as resp:",
           "                                          decompress=True) as resp:", FETCH_TESTS),
    # http: trickles, link-local, redirects
    Mutant("http-no-speed-guard", SRC + "net/limits.py",
           "        if elapsed < self.window:\n            return",
           "        if True:\n            return",
           (HOSTILE,)),
    Mutant("http-bandwidth-counted", SRC + "net/limits.py",
           "        self._start += seconds", "        pass", (HOSTILE,)),
    Mutant("http-link-local", SRC + "net/origin.py",
           "    if is_link_local(host) and host != trusted and host not in allow_hosts:",
           "    if False:", (HOSTILE,)),
    Mutant("http-resolver-passes", SRC + "net/origin.py",
           '        kept = [r for r in found if not is_link_local(r["host"])]',
           "        kept = found", (HOSTILE,)),
    Mutant("http-no-loop-check", SRC + "net/http.py",
           "            if current in visited:", "            if False:",
           (HOSTILE,)),
    # placement and recovery: nothing half-written under data/, nothing recorded unverified
    Mutant("placer-small-in-place", SRC + "storage/local.py",
           "        return LocalUpload(self._temp(key), target, durable=durable)",
           "        return LocalUpload(target, target, durable=durable)",
           ("tests/archive/test_placer.py", "tests/test_crash.py", "tests/storage")),
    Mutant("replay-no-rehash", SRC + "archive/upkeep.py",
           "              and _sha256(storage, DATA + p.path) == p.sha256]", "]",
           ("tests/test_crash.py",)),
    Mutant("recover-keeps-stale-small", SRC + "storage/local.py",
           "                        os.unlink(os.path.join(folder, name))",
           "                        pass", ("tests/test_crash.py", "tests/storage")),
    Mutant("history-not-kept", SRC + "archive/placer.py",
           "            keep_history(self.storage, key, previous)", "            pass",
           ("tests/test_crash.py", "tests/test_rerun_state.py")),
    Mutant("seal-keeps-old-tagmanifest", SRC + "bag/write.py",
           "    storage.retract(TAGMANIFEST)\n", "", ("tests/bag",)),
    # object storage: a fresh machine records what a killed run finished; leftovers go
    Mutant("s3-no-reconcile", SRC + "run/engine.py",
           "            count += await self._call(reconcile, self.store, self.remote, now)",
           "            pass", ("tests/test_s3_cli.py",)),
    Mutant("s3-sweep-keeps-uploads", SRC + "storage/s3_uploads.py",
           "            if upload[\"Initiated\"] < before:", "            if False:",
           ("tests/test_s3_cli.py",)),
    Mutant("s3-snapshot-not-restored", SRC + "archive/snapshot.py",
           "    if database.exists() or storage.size(SNAPSHOT) is None:",
           "    if True:", ("tests/test_s3_cli.py",)),
    Mutant("s3-adopts-foreign-prefix", SRC + "storage/open.py",
           "    if stray is not None or (top and not ours):", "    if stray is not None:",
           ("tests/test_s3_cli.py",)),
    Mutant("policy-retry-after-ignored", SRC + "net/policy.py",
           "last.retry_after or 1.0)", "1.0)", ("tests/test_politeness.py",)),
)


def run(mutant: Mutant) -> tuple[str, float, str]:
    path = ROOT / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        return "STALE (the text to replace is not there once: update the mutant)", 0.0, ""
    start = time.monotonic()
    try:
        path.write_text(original.replace(mutant.old, mutant.new))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               *mutant.tests], cwd=ROOT, capture_output=True, text=True,
                              timeout=1800)
    finally:
        path.write_text(original)
    failed = next((line for line in proc.stdout.splitlines() if line.startswith("FAILED")), "")
    verdict = "killed" if proc.returncode else "SURVIVED"
    return verdict, time.monotonic() - start, failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the mutants whose name starts with this")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if m.name.startswith(args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.path}")
        return 0
    survivors = 0
    print("| mutant | verdict | seconds | first failing test |\n|---|---|---|---|")
    for mutant in chosen:
        verdict, seconds, failed = run(mutant)
        survivors += verdict != "killed"
        print(f"| {mutant.name} | {verdict} | {seconds:.0f} | {failed.removeprefix('FAILED ')} |",
              flush=True)
    print(f"\n{len(chosen) - survivors} of {len(chosen)} killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())

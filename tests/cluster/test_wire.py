"""What crosses the cluster's connection, and what a run without the extra says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assetvault.cluster.wire import decode_outcome, encode_outcome
from assetvault.models import Outcome, Status


def test_an_outcome_survives_msgpack_turning_its_list_into_a_tuple() -> None:
    outcome = Outcome("k", "job", Status.DOWNLOADED, "https://h/x?api_key=***", "a/b.png", 12,
                      "ab" * 32, None, "v1", '"etag"', None, 12)
    wire = encode_outcome(outcome)
    assert decode_outcome(wire) == outcome
    assert decode_outcome(tuple(wire)) == outcome


@pytest.mark.parametrize("wire", [None, [], ["k"] * 12, ("k", "j", "nonsense", "", None, 0, None,
                                                        None, None, None, None, 0)])
def test_what_is_not_an_outcome_is_refused(wire: object) -> None:
    with pytest.raises(ValueError):
        decode_outcome(wire)


def test_without_the_cluster_extra_workers_is_a_usage_error(tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.yaml"
    (tmp_path / "list.txt").write_text("http://127.0.0.1:9/x\n")
    manifest.write_text('{"version": 1, "archive": "a", "jobs": [{"name": "u", "source": "urls",'
                        ' "urls_file": "list.txt"}]}')
    # As if Dask were not installed: importing it fails.
    code = ("import sys; sys.modules['distributed'] = None; from assetvault.cli import main; "
            f"sys.exit(main(['run', {str(manifest)!r}, '--workers', '2', '-q']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install 'assetvault[cluster]'" in done.stderr
    assert "Traceback" not in done.stderr

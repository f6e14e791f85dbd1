"""Where an archive's local working state lives."""

from __future__ import annotations

from pathlib import Path

from assetvault.storage.location import parse_store_url, work_folder


def test_the_same_bucket_on_two_endpoints_gets_two_state_folders(tmp_path: Path) -> None:
    url = parse_store_url("s3://backups/brand")
    assert url is not None
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    aws = work_folder(url, None, env)
    local = work_folder(url, None, {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:8333"})
    assert aws != local and aws.parent == local.parent == tmp_path / "assetvault"
    assert work_folder(url, tmp_path / "mine", env) == tmp_path / "mine"

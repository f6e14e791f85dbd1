"""S3Storage against a real S3 server (SeaweedFS on loopback): the seam's promises hold there."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from assetvault.storage import Meta, StorageError, Stored, UnsafeKeyError
from assetvault.storage.location import StoreUrl
from assetvault.storage.s3 import S3Storage
from tests.seaweed import SeaweedS3

_n = itertools.count()


def storage(seaweed: SeaweedS3, tmp_path: Path, prefix: str = "arch/ive") -> S3Storage:
    bucket = f"t{next(_n)}-{tmp_path.name[-20:].lower().replace('_', '-')}".strip("-")
    seaweed.create_bucket(bucket)
    return S3Storage(StoreUrl("s3", bucket, prefix), tmp_path / "work", seaweed.env())


def test_objects_round_trip_with_their_provenance(seaweed: SeaweedS3, tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    body = b"logo" * 1000
    sha = hashlib.sha256(body).hexdigest()
    store.put_bytes("data/a/logo.png", body,
                    Meta(sha, "https://cdn/x.png?api_key=***&é", "v7", "k/1", "job"))
    assert store.read("data/a/logo.png") == body
    assert b"".join(store.blocks("data/a/logo.png")) == body
    assert store.size("data/a/logo.png") == len(body)
    meta = store.metadata("data/a/logo.png")
    assert meta["sha256"] == sha and meta["version"] == "v7" and meta["key"] == "k%2F1"
    assert store.size("data/missing.png") is None
    assert list(store.list("data/")) == [Stored("data/a/logo.png", len(body))]


def test_large_files_stream_in_parts_and_the_source_is_consumed(seaweed: SeaweedS3,
                                                                tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    source = tmp_path / "big.part"
    block = bytes(range(256)) * 4096
    with open(source, "wb") as f:
        for _ in range(24):  # 24 MiB: three parts
            f.write(block)
    store.put_file("data/big.bin", source, Meta("0" * 64, "u"))
    assert not source.exists()
    assert store.size("data/big.bin") == 24 << 20
    digest = hashlib.sha256()
    for chunk in store.blocks("data/big.bin"):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(block * 24).hexdigest()


def test_an_upload_appears_whole_on_commit_and_never_on_abort(seaweed: SeaweedS3,
                                                               tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    upload = store.upload("manifest-sha256.txt", durable=True)
    upload.write(b"a  data/x\n")
    assert store.size("manifest-sha256.txt") is None
    upload.commit()
    assert store.read("manifest-sha256.txt") == b"a  data/x\n"
    other = store.upload("manifest-sha256.txt")
    other.write(b"never")
    other.abort()
    assert store.read("manifest-sha256.txt") == b"a  data/x\n"
    assert not list((tmp_path / "work").iterdir())


def test_copies_are_server_side_and_only_tag_files_retract(seaweed: SeaweedS3,
                                                          tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    store.put_bytes("data/a.bin", b"old bytes", Meta("1" * 64, "u"))
    store.copy("data/a.bin", ".assetvault/history/a.20260101T000000Z.1111.bin")
    assert store.read(".assetvault/history/a.20260101T000000Z.1111.bin") == b"old bytes"
    with pytest.raises(UnsafeKeyError):
        store.retract("data/a.bin")
    store.put_bytes("tagmanifest-sha256.txt", b"x")
    store.retract("tagmanifest-sha256.txt")
    assert store.size("tagmanifest-sha256.txt") is None and store.size("data/a.bin") == 9


def test_the_listing_answers_sizes_and_follows_our_writes(seaweed: SeaweedS3,
                                                         tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    store.put_bytes("data/one.bin", b"1")
    assert store.load_listing() == 1
    store.put_bytes("data/two.bin", b"22")
    assert (store.size("data/one.bin"), store.size("data/two.bin")) == (1, 2)


def test_plain_http_said_no_to_is_refused_and_said_yes_to_is_used(seaweed: SeaweedS3,
                                                                  tmp_path: Path) -> None:
    # The fixture's endpoint is http://: written down, it is meant, unless a "no" was said.
    url = storage(seaweed, tmp_path).url
    for said in ("false", "no", "0"):
        with pytest.raises(StorageError, match=r"allow_http is .* plain http://"):
            S3Storage(StoreUrl("s3", url.bucket, url.prefix, (("allow_http", said),)),
                      tmp_path, seaweed.env())
    with pytest.raises(StorageError, match="AWS_ALLOW_HTTP is 'false'"):
        S3Storage(url, tmp_path, {**seaweed.env(), "AWS_ALLOW_HTTP": "false"})
    # The manifest's word comes before the environment's.
    said_yes = S3Storage(StoreUrl("s3", url.bucket, url.prefix, (("allow_http", "true"),)),
                         tmp_path, {**seaweed.env(), "AWS_ALLOW_HTTP": "false"})
    said_yes.put_bytes("data/x", b"x")
    assert said_yes.read("data/x") == b"x"


def test_a_missing_bucket_and_refused_keys_are_storage_errors(seaweed: SeaweedS3,
                                                               tmp_path: Path) -> None:
    missing = S3Storage(StoreUrl("s3", "no-such-bucket-here", ""), tmp_path, seaweed.env())
    with pytest.raises(StorageError, match="NoSuchBucket"):
        list(missing.list(""))
    store = storage(seaweed, tmp_path)
    env = {**seaweed.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}
    refused = S3Storage(store.url, tmp_path, env)
    with pytest.raises(StorageError) as caught:
        refused.put_bytes("data/x", b"x")
    assert "wrong-secret-value" not in str(caught.value)


def test_a_server_side_copy_is_never_reconciled_as_its_source(seaweed: SeaweedS3,
                                                             tmp_path: Path) -> None:
    """A copy keeps its source's metadata: a fresh machine must not record the copy as the
    item the source was written for (that item's row would move to the copy's path)."""
    from assetvault.archive.snapshot import reconcile
    from assetvault.archive.store import Store

    store = storage(seaweed, tmp_path)
    body = b"shared by two items"
    sha = hashlib.sha256(body).hexdigest()
    store.put_bytes("data/a/x.png", body, Meta(sha, "https://cdn/x.png", "v1", "item-a", "job"))
    store.copy("data/a/x.png", "data/b/x.png")
    store.load_listing()
    state = Store(tmp_path / "state.sqlite")
    try:
        assert reconcile(state, store, "2026-12-01 00:00:00") == 1
        assert [path for path, _, _ in state.payload()] == ["a/x.png"]
    finally:
        state.close()


def test_an_object_is_read_in_ranges_of_one_version(seaweed: SeaweedS3, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request is bounded in time, so a large object is read a range at a time: the
    ranges join up to the whole object, and all are of the version the first named."""
    from assetvault.storage import s3

    monkeypatch.setattr(s3, "RANGE", 1000)
    store = storage(seaweed, tmp_path)
    body = bytes(range(256)) * 10  # 2,560 bytes: three ranges
    store.put_bytes("data/r.bin", body)
    store.put_bytes("data/empty.bin", b"")
    assert b"".join(store.blocks("data/r.bin")) == body
    assert list(store.blocks("data/empty.bin")) == []
    reading = store.blocks("data/r.bin")
    first = next(reading)
    store.put_bytes("data/r.bin", body[::-1])  # replaced between two ranges
    assert first == body[:1000]
    with pytest.raises(StorageError):  # never a splice of two versions
        b"".join(reading)


def test_only_payload_objects_are_removed_and_the_listing_follows(seaweed: SeaweedS3,
                                                                  tmp_path: Path) -> None:
    store = storage(seaweed, tmp_path)
    store.put_bytes("data/a/original.png", b"old")
    store.put_bytes(".assetvault/history/a/original.1.png", b"old")
    assert store.load_listing() == 1
    store.remove("data/a/original.png")
    store.remove("data/a/original.png")  # already gone: nothing to do
    assert store.size("data/a/original.png") is None
    assert list(store.list("data/")) == []
    with pytest.raises(UnsafeKeyError):
        store.remove(".assetvault/history/a/original.1.png")
    assert store.read(".assetvault/history/a/original.1.png") == b"old"

"""The SeaweedFS S3 test server itself: it stores, refuses bad keys, has no implicit buckets."""

from __future__ import annotations

import hashlib
import re

from tests.seaweed import SeaweedS3


def _code(body: bytes) -> str:
    found = re.search(rb"<Code>([^<]+)</Code>", body)
    return found.group(1).decode() if found else ""


def test_put_get_round_trip_with_metadata(seaweed: SeaweedS3) -> None:
    seaweed.create_bucket("roundtrip")
    body = bytes(range(256)) * 64
    digest = hashlib.sha256(body).hexdigest()
    meta = {"sha256": digest, "source-url": "https://example.org/a?b=1", "version": "v7"}
    assert seaweed.put("roundtrip", "data/dir/a.bin", body, meta).status == 200
    got = seaweed.get("roundtrip", "data/dir/a.bin")
    assert got.status == 200
    assert got.body == body
    assert got.headers["x-amz-meta-sha256"] == digest
    assert got.headers["x-amz-meta-version"] == "v7"
    listing = seaweed.request("GET", "/roundtrip", query={"list-type": "2", "prefix": "data/"})
    assert b"<Key>data/dir/a.bin</Key>" in listing.body
    env = seaweed.env()
    assert env["AWS_ENDPOINT_URL"] == seaweed.endpoint.rstrip("/")
    assert seaweed.endpoint.startswith("http://127.0.0.1:")


def test_wrong_credentials_are_refused(seaweed: SeaweedS3) -> None:
    seaweed.create_bucket("creds")
    wrong_secret = seaweed.request("PUT", "/creds/x", b"x", secret_key="not-the-secret")
    assert wrong_secret.status == 403
    assert _code(wrong_secret.body) == "SignatureDoesNotMatch"
    unknown_key = seaweed.request("GET", "/", access_key="AKIDNOBODY", secret_key="whatever")
    assert unknown_key.status == 403
    assert _code(unknown_key.body) == "InvalidAccessKeyId"
    assert seaweed.get("creds", "x").status == 404  # nothing was written by the refused put


def test_missing_bucket_is_not_created_on_put(seaweed: SeaweedS3) -> None:
    missing = seaweed.put("never-created", "k", b"x")
    assert missing.status == 404
    assert _code(missing.body) == "NoSuchBucket"
    assert seaweed.request("HEAD", "/never-created").status == 404
    seaweed.create_bucket("created-later")
    assert seaweed.put("created-later", "k", b"x").status == 200
    assert seaweed.get("created-later", "k").body == b"x"

"""Incomplete multipart uploads: listed and aborted with botocore, which obstore cannot do.

A process killed mid-upload leaves its parts stored (and billed) but invisible; S3 keeps them
until someone aborts them. The next run under the archive's lock aborts those begun before it
opened the archive.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .location import StoreUrl


def abort_stale_uploads(url: StoreUrl, environ: Mapping[str, str], *, before: datetime) -> int:
    """Abort every multipart upload under the prefix begun before ``before``; how many."""
    import botocore.config
    import botocore.session

    from .s3 import endpoint_of, truthy

    addressing = "virtual" if truthy(url.option("virtual_hosted_style")) else "path"
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint_of(url, environ),
        region_name=(url.option("region") or environ.get("AWS_REGION")
                     or environ.get("AWS_DEFAULT_REGION") or "us-east-1"),
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=environ.get("AWS_SESSION_TOKEN"),
        config=botocore.config.Config(s3={"addressing_style": addressing},
                                      retries={"max_attempts": 5, "mode": "standard"},
                                      connect_timeout=10, read_timeout=60))
    prefix = f"{url.prefix}/" if url.prefix else ""
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=url.bucket,
                                                                        Prefix=prefix):
        for upload in page.get("Uploads", []):
            if upload["Initiated"] < before:
                client.abort_multipart_upload(Bucket=url.bucket, Key=upload["Key"],
                                              UploadId=upload["UploadId"])
                aborted += 1
    return aborted

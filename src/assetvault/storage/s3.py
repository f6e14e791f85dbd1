"""An archive in S3 (or an S3-compatible store), through obstore.

obstore (Rust ``object_store``) does the data path: measured against aiobotocore on SeaweedFS
here (bench/S3_CLIENTS.md) it took a quarter of the CPU per small put and half the memory when
streaming. It has no call to list or abort incomplete multipart uploads, so :meth:`sweep` uses
botocore for those two. Calls block: the run makes them from worker threads, as it does a
local folder's. Payload sizes come from one listing of ``data/`` taken at the start and kept up
to date by this process's own writes, not from a HEAD per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from urllib.parse import quote

import obstore
from obstore.store import S3Store

from .base import DATA, Meta, StorageError, Stored, UnsafeKeyError
from .location import StoreUrl

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from obstore import GetOptions
    from obstore.store import ClientConfig, RetryConfig, S3Config

    from .s3_stream import S3Stream

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("assetvault")
READ = 1 << 20
# Parts of 16 MiB, 2 at a time per upload: against 8 MiB x 4, SeaweedFS spent 1.4-1.6 CPU-s
# less per GiB and the same upload took 0.6-0.9 s less for 1 GiB, at the same peak memory
# (8 x 128 MiB files, 8 at once); 32 MiB parts cost 200-400 MiB more memory for nothing.
PART = 16 << 20
PARALLEL_PARTS = 2
# Bodies up to this size are held in memory and put in one request: no local partial file
# written and read back (16 downloads at once hold at most 128 MiB).
WHOLE = 8 << 20


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def endpoint_of(url: StoreUrl, environ: Mapping[str, str]) -> str | None:
    """The manifest's endpoint, else the ecosystem's variables (service-specific first)."""
    return (url.option("endpoint") or environ.get("AWS_ENDPOINT_URL_S3")
            or environ.get("AWS_ENDPOINT_URL") or None)


RANGE = 256 << 20  # bytes read by one request (see blocks)
FIRST_TIMEOUT = "20s"  # the first request of a run: one listing of the prefix
REQUEST_TIMEOUT = "600s"


def make_store(url: StoreUrl, environ: Mapping[str, str], *, first: bool = False) -> S3Store:
    """The obstore client of ``url``: credentials and region from the environment. ``first``:
    the client of the first request, which must answer soon (an endpoint that accepts
    connections and never answers is found before anything is downloaded, not waited on)."""
    config: S3Config = {}
    for key, var in (("access_key_id", "AWS_ACCESS_KEY_ID"),
                     ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                     ("session_token", "AWS_SESSION_TOKEN")):
        if environ.get(var):
            config[key] = environ[var]  # type: ignore[literal-required]
    region = url.option("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    endpoint = endpoint_of(url, environ)
    if endpoint:
        config["endpoint"] = endpoint
    if url.option("virtual_hosted_style") is not None:
        config["virtual_hosted_style_request"] = truthy(url.option("virtual_hosted_style"))
    # An http:// endpoint someone wrote down is meant: only https is assumed otherwise; but
    # not against an explicit "no" (the manifest's, else AWS_ALLOW_HTTP), which is refused.
    plain = (endpoint or "").startswith("http://")
    said = url.option("allow_http")
    said, where = ((said, "archive_options: allow_http") if said is not None
                   else (environ.get("AWS_ALLOW_HTTP"), "AWS_ALLOW_HTTP"))
    if plain and (said or "").strip() and not truthy(said):
        raise ValueError(f"{where} is {(said or '').strip()!r} but the endpoint is plain "
                         f"http:// ({endpoint}): use https://, or allow http")
    allow_http = truthy(said) or plain
    if not (endpoint or "").startswith("http://"):
        # Over TLS the body is already protected in transit and we hash every byte ourselves
        # (the SHA-256 travels as metadata): signing the payload would hash it a second time
        # (measured: 0.7-1.0 CPU-s per GiB). Over plain http the signature is the only guard.
        config["unsigned_payload"] = True
    # `timeout` bounds a whole request, body included (obstore has no idle timeout): every
    # request here moves at most a part or a staged file (reads stream in ranges), so 10
    # minutes allows ~30 KB/s, and a store that stops answering mid-run costs an item that
    # long, never the run for ever.
    client: ClientConfig = {"allow_http": allow_http, "connect_timeout": "10s",
                            "timeout": FIRST_TIMEOUT if first else REQUEST_TIMEOUT}
    retry: RetryConfig = {"max_retries": 1 if first else 6,
                          "retry_timeout": timedelta(seconds=30 if first else 180),
                          "backoff": {"init_backoff": timedelta(milliseconds=200),
                                      "max_backoff": timedelta(seconds=20), "base": 2}}
    return S3Store(url.bucket, prefix=url.prefix or None, config=config, client_options=client,
                   retry_config=retry)


URL_CAP = 1024  # S3 user metadata is capped at 2 KiB in all: a longer URL is cut


def _attributes(meta: Meta | None, key: str) -> dict[str, str] | None:
    if meta is None:
        return None
    # User metadata travels as HTTP headers: ASCII only, so the URL is percent-encoded. The
    # object's own key goes too: a server-side copy keeps its source's metadata, and a copy
    # must never be taken for the item its source was written for.
    url = quote(meta.url, safe=":/?&=~,;@!$'()*[]#")
    attrs = {"object": quote(key, safe="/"),
             "source-url": url if len(url) <= URL_CAP else url[:URL_CAP] + "..."}
    if meta.sha256:  # a streamed object gets its SHA-256 when it is complete (stamp)
        attrs["sha256"] = meta.sha256
    for name, value in (("version", meta.version), ("key", meta.key), ("job", meta.job),
                        ("kind", meta.kind)):
        if value:
            attrs[name] = quote(value, safe="")
    return attrs


class S3Storage:
    """A bucket and prefix; thread-safe."""

    def __init__(self, url: StoreUrl, scratch: Path,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.url = url
        self._environ = dict(environ)
        self._store = _call(make_store, url, environ)
        self._scratch = scratch  # local folder for staging tag files
        self._sizes: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._sweep_lock = threading.Lock()
        self._swept = False
        # Set while no sweep is due: a multipart upload waits for it (see sweep_beside).
        self._no_sweep_due = threading.Event()
        self._no_sweep_due.set()
        self._client_lock = threading.Lock()
        self._client: BaseClient | None = None  # botocore's, made when first needed
        self.started = datetime.now(UTC)

    @property
    def location(self) -> str:
        return str(self.url)

    @property
    def whole_up_to(self) -> int:
        return WHOLE

    @property
    def store(self) -> S3Store:
        return self._store

    def where(self, key: str) -> str:
        return f"{self.url}/{key}"

    # reading ---------------------------------------------------------------------------------

    def load_listing(self) -> int:
        """List ``data/`` once: sizes of payload objects are answered from it from now on."""
        sizes = {s.key: s.size for s in self.list(DATA)}
        with self._lock:
            self._sizes = sizes
        return len(sizes)

    def listing(self) -> dict[str, int]:
        """The sizes of ``data/`` as loaded and since written (empty before loading)."""
        with self._lock:
            return dict(self._sizes or {})

    def size(self, key: str) -> int | None:
        sizes = self._sizes
        if sizes is not None and key.startswith(DATA):
            return sizes.get(key)
        try:
            return int(_call(obstore.head, self._store, key)["size"])
        except FileNotFoundError:
            return None

    def top_level(self) -> list[str]:
        """The objects and folders (ending in ``/``) right under the prefix: one request,
        the first of a run, by a client that gives up soon (see make_store)."""
        first = _call(make_store, self.url, self._environ, first=True)
        found = _call(obstore.list_with_delimiter, first, None)
        return [*(f"{p.rstrip('/')}/" for p in found["common_prefixes"]),
                *(m["path"] for m in found["objects"])]

    def etag(self, key: str) -> str | None:
        """The object's ETag (None when there is no object): which version of it this is."""
        try:
            found = _call(obstore.head, self._store, key).get("e_tag")
        except FileNotFoundError:
            return None
        return str(found) if found else None

    def metadata(self, key: str) -> dict[str, str]:
        """The object's user metadata (a HEAD)."""
        result = _call(obstore.get, self._store, key, options={"head": True})
        return {k: str(v) for k, v in result.attributes.items()}

    def read(self, key: str) -> bytes:
        return bytes(_call(obstore.get, self._store, key).bytes())

    def blocks(self, key: str) -> Iterator[bytes]:
        """The object's bytes, at most RANGE of them a request (each bounded by
        REQUEST_TIMEOUT), every range of the version its HEAD named (If-Match)."""
        head = _call(obstore.head, self._store, key)
        size, etag = int(head["size"]), head.get("e_tag")
        offset = 0
        while offset < size:
            options: GetOptions = {"range": (offset, min(offset + RANGE, size))}
            if etag:
                options["if_match"] = etag
            result = _call(obstore.get, self._store, key, options=options)
            start = offset
            stream = iter(result.stream(min_chunk_size=READ))
            while (block := _call(next, stream, None)) is not None:
                offset += len(block)
                yield bytes(block)
            if offset == start:
                raise StorageError(f"{key}: the object ended at byte {offset} of {size}")

    def list(self, prefix: str) -> Iterator[Stored]:
        stream = iter(_call(obstore.list, self._store, prefix or None, chunk_size=1000))
        while (batch := _call(next, stream, None)) is not None:
            for meta in batch:
                yield Stored(meta["path"], int(meta["size"]))

    # writing ---------------------------------------------------------------------------------

    def put_file(self, key: str, source: Path, meta: Meta | None = None) -> None:
        size = os.stat(source).st_size
        if size > PART:
            self.before_multipart()
        _call(obstore.put, self._store, key, Path(source), attributes=_attributes(meta, key),
              chunk_size=PART, max_concurrency=PARALLEL_PARTS)
        self.note(key, size)
        os.unlink(source)

    def put_bytes(self, key: str, body: bytes, meta: Meta | None = None) -> None:
        _call(obstore.put, self._store, key, body, attributes=_attributes(meta, key),
              use_multipart=len(body) > PART, chunk_size=PART)
        self.note(key, len(body))

    @property
    def takes_new(self) -> bool:
        return False

    def put_new(self, key: str, body: bytes, meta: Meta | None = None) -> bool:
        return False  # the listing knows what is there: keep_history asks it, not the store

    def upload(self, key: str, *, durable: bool = False) -> S3Upload:
        self._scratch.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix="upload-", dir=self._scratch)
        return S3Upload(self, key, fd, Path(temp))

    def copy(self, source: str, key: str) -> None:
        _call(obstore.copy, self._store, source, key)
        size = self._listed(source)
        if size is not None:
            self.note(key, size)

    def retract(self, key: str) -> None:
        if "/" in key:
            raise UnsafeKeyError(f"only a tag file at the root is ever removed, not {key!r}")
        with contextlib.suppress(FileNotFoundError):
            _call(obstore.delete, self._store, key)

    def remove(self, key: str) -> None:
        if not key.startswith(DATA):
            raise UnsafeKeyError(f"only a payload object is ever removed, not {key!r}")
        with contextlib.suppress(FileNotFoundError):
            _call(obstore.delete, self._store, key)
        with self._lock:
            if self._sizes is not None:
                self._sizes.pop(key, None)

    def stream(self, key: str, meta: Meta, size: int) -> S3Stream | None:
        from .s3_stream import S3Stream
        from .s3_uploads import COPY_MAX

        if size > COPY_MAX:
            return None  # its metadata could not be set after the upload by one copy
        return S3Stream(self, key, _attributes(meta, key), size)

    def stamp(self, key: str, meta: Meta, size: int) -> None:
        """Set the full provenance (with the SHA-256) on a streamed object, once complete."""
        from .s3_uploads import replace_metadata

        attrs = _attributes(meta, key)
        assert attrs is not None
        _call(lambda: replace_metadata(self._botocore(), self.url, key, attrs))
        self.note(key, size)

    def sweep(self) -> None:
        """Abort the multipart uploads a killed run left under the prefix (started before this
        process opened the archive: never one of its own). Once per process: a second call
        (the bag's, at the seal) waits for the first and finds nothing new to abort."""
        from .s3_uploads import abort_stale_uploads

        with self._sweep_lock:
            if self._swept:
                self._no_sweep_due.set()
                return
            self._swept = True
            try:
                _call(lambda: abort_stale_uploads(self._botocore(), self.url,
                                                  before=self.started))
            except Exception as exc:  # botocore's: AccessDenied without the permission, ...
                # Left uploads cost storage, not integrity: the run goes on, and says so.
                log.warning("%s: could not abort incomplete multipart uploads (%s); they "
                            "cost storage until aborted", self.url, _reason(exc))
            finally:
                self._no_sweep_due.set()

    def sweep_beside(self) -> None:
        """Say a sweep is about to run beside this process's own writes: until it is done,
        no multipart upload starts (:meth:`before_multipart`). A sweep tells a killed run's
        uploads from ours by their start time, as the server's clock (to the second here)
        gives it: one of ours begun while it runs could pass for a killed run's."""
        self._no_sweep_due.clear()

    def before_multipart(self) -> None:
        self._no_sweep_due.wait()

    def multipart_free(self) -> bool:
        """No sweep due: a multipart upload may start without waiting (or a thread hop)."""
        return self._no_sweep_due.is_set()

    def _botocore(self) -> BaseClient:
        from .s3_uploads import make_client

        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.url, self._environ)
            return self._client

    def _listed(self, key: str) -> int | None:
        with self._lock:
            return None if self._sizes is None else self._sizes.get(key)

    def note(self, key: str, size: int) -> None:
        """Keep the listing current with our own writes (several worker threads write)."""
        with self._lock:
            if self._sizes is not None and key.startswith(DATA):
                self._sizes[key] = size


class S3Upload:
    """Staged in a local file, put whole on commit (multipart past a part's size)."""

    def __init__(self, storage: S3Storage, key: str, fd: int, temp: Path) -> None:
        self._storage = storage
        self._key = key
        self._file = os.fdopen(fd, "wb")
        self._temp = temp

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self, meta: Meta | None = None) -> None:
        self._file.close()
        try:
            self._storage.put_file(self._key, self._temp, meta)
        except BaseException:
            self._temp.unlink(missing_ok=True)  # the key keeps what it had; nothing stays here
            raise

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


def _call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """An obstore call; its errors (after its own retries) as StorageError, an OSError, so a
    failed write fails the item the way a full disk would, and says why."""
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, UnsafeKeyError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # obstore's errors, and its Rust panics (a BaseException)
        raise StorageError(_reason(exc)) from None


async def call_async(call: Awaitable[T]) -> T:
    """An awaited obstore call, its errors as :func:`_call` gives them."""
    try:
        return await call
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise StorageError(_reason(exc)) from None


_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_STATUS = re.compile(r"status: (\d{3})")


def _reason(exc: BaseException) -> str:
    """What the store said, in a line: its S3 error code and HTTP status where it sent them
    (obstore's own text is a multi-line debug dump)."""
    text = str(exc)
    code, status = _CODE.search(text), _STATUS.search(text)
    if code or status:
        said = " ".join(x for x in (code and code.group(1), status and f"(HTTP {status.group(1)})")
                        if x)
        return f"the store answered {said}"
    if "error sending request" in text or "connect" in text.lower():
        return "the store did not answer (connection failed or timed out, after retries)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]

"""A local stand-in for both asset APIs and their file hosts, over real sockets.

It imports nothing from the rest of ``assetvault``: a bug shared by client and server cannot
hide itself. Everything is a pure function of :class:`DatasetConfig` (plus what a test changes
through :class:`Dataset`), so runs are reproducible and a million records cost nothing until
listed.

Listeners (127.0.0.1): ``api_url`` answers both APIs and every file path; ``files_url`` is a
second origin serving every file (listings point there) and ``/redirect?to=URL`` (302).
``GET /_sandbox/stats`` gives ``{"counts": {path: n}, "total": n}``; ``POST /_sandbox/reset``
clears them.

Spectrum: ``GET /api/assets/saved/client/{client}/organization/{org}?page=N&pageSize=M`` needs
the ``SPECTRUM_API_TOKEN`` header (else 403) and admits ``spectrum_limit`` requests per
``spectrum_window`` seconds per organization path (else 403, as Spectrum does). An unknown client
or organization answers 200 with ``contents: []`` and ``error`` set.

OnPremise: ``GET /{products|beers|restaurants|menu_items}/{id}/assets.json`` needs
``api_key`` and ``X-TASTEVIN-VERSION: 1.2`` (else 412); ``last_updated_at`` keeps assets updated
strictly after it (UTC). Unknown id: 404. Versions of an unprocessed asset answer 404.
The account's lists, same key and header: ``GET /products.json[?per_page=N&page=P]`` (without
``per_page``, everything at once; a page after the first without ``last_updated_at`` is refused
with 400 and a JSON ``error``), ``GET /beers.json`` and ``GET /menu_items.json`` (one answer;
restaurants have none). ``last_updated_at`` keeps owners edited strictly after it. Ids are the
generated owner ids; each record has ``id``, ``updated_at``, ``name`` and descriptive fields.
``DatasetConfig.owner_list_shape``: ``object`` (``{"products": [...]}``), ``wrapped``
(``{"products": [{"product": {...}}]}``) or ``bare`` (an array). ``Dataset.remove_owner`` drops
an owner (its assets listing and files then answer 404); ``Dataset.set_list_answer`` makes a
list answer any status, type and body.

Files: ``/blob/…`` (Azure: opaque ETag; half the blobs carry Content-MD5 on whole reads and
x-ms-blob-content-md5 on every read), ``/cdn/…`` (opaque ETag, no MD5), ``/rackcdn/…`` (ETag is
the hex MD5). Range, If-Range, HEAD; never a Content-Encoding.

Fault grammar (``faults=`` here, ``assetvault sandbox --faults SPEC`` on the command line)::

    SPEC    := RULE ("," RULE)*
    RULE    := SCOPE ":" KIND ["@" TRIGGER] (":" PARAM "=" VALUE)*
    SCOPE   := spectrum | onpremise | files | api (both APIs) | *
    KIND    := 500 | 503 | 429 | 403      answer that status      [retry-after=S | date | dateS]
             | reset      send FRACTION of the body, then a TCP reset       [fraction=0.5]
             | truncate   full Content-Length, FRACTION of the body, close  [fraction=0.5]
             | stall      send FRACTION, pause SECONDS, send the rest   [fraction=0.5, seconds=30]
             | slow       drip the body at RATE bytes/s                     [rate=10000]
             | trickle    one byte every SECONDS, never stalling outright    [seconds=30]
             | badmd5     wrong Content-MD5 / x-ms-blob-content-md5 / MD5 ETag (files)
             | change     new content and ETag on every request (files)
             | gzip       the whole body gzip-encoded although identity was asked (files)
             | ignore-if-range  answer a Range with 206 even when If-Range no longer
                          matches (files; with change: another version's bytes, ETag, total)
             | redirect-loop    302 back to the same URL (files)
             | linklocal  302 to http://169.254.169.254/... (the cloud metadata service)
    TRIGGER := pP (probability P, seeded by path and request number: reproducible)
             | firstN (the first N requests to each distinct path) | omitted (always)

Hostile upstreams for a demo: ``files:truncate@first1,files:change,files:ignore-if-range``
splices a new version onto a resumed partial unless the client checks; ``files:trickle:seconds=2``
never ends unless the client has a low-speed limit.

``retry-after=date3`` sends an HTTP date 3 s ahead (``date`` alone: 1 s). Several rules may fire
on one request: the first status rule wins over everything; the first body rule applies;
badmd5 and change combine with them. Example: ``files:503@first2:retry-after=1,api:reset@p0.1``.

Hostile dataset (``DatasetConfig(hostile=True)``): see :mod:`assetvault.sandbox.hostile`.
"""

from __future__ import annotations

from .config import DatasetConfig
from .dataset import Dataset
from .faults import FaultPlan, FaultRule
from .server import Sandbox, SandboxThread, serve
from .state import RequestLog

__all__ = [
    "Dataset",
    "DatasetConfig",
    "FaultPlan",
    "FaultRule",
    "RequestLog",
    "Sandbox",
    "SandboxThread",
    "serve",
]

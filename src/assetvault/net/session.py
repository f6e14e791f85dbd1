"""The API calls' aiohttp session, opened at the first API call of a run.

Only JSON APIs go through aiohttp (decoded bodies, its mature client); files go through
``client``. It is imported only when a job calls an API: importing aiohttp alone costs
0.4 CPU-seconds on this machine (its TLS contexts are built at import), a tenth of a run of
5,000 small files from a URL list.
"""

from __future__ import annotations

import functools
import socket
from typing import cast

import aiohttp
from aiohttp import ClientError
from aiohttp.abc import AbstractResolver, ResolveResult

from .origin import GuardedResolver

__all__ = ["ClientError", "client_timeout", "open_session"]


class _Resolver(AbstractResolver):
    """The run's guarded resolver, as aiohttp's connector asks for one."""

    def __init__(self, inner: GuardedResolver) -> None:
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return cast(list[ResolveResult], await self._inner.resolve(host, port, family))

    async def close(self) -> None:
        pass


def open_session(resolver: GuardedResolver, user_agent: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, resolver=_Resolver(resolver))
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": user_agent})


@functools.lru_cache(maxsize=64)
def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """No total limit: an attempt is abandoned only when it makes no progress for ``seconds``."""
    return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=seconds, sock_read=seconds)

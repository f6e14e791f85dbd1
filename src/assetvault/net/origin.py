"""Where a request may go: origins, the URL rules, and no link-local address, ever, unasked.

Credentials travel only to the origin they belong to (see ``http``); this module says what an
origin is and which URLs are never fetched at all.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..redact import redact_url

Origin = tuple[str, str, int]


DEFAULT_PORTS = {"http": 80, "https": 443}
_AUTHORITY_END = re.compile(r"[/?#]")


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of a URL, lower-cased, with the default port filled in.

    An unparsable URL has the origin ``("", "", 0)``, which :func:`check_url` refuses.
    """
    start = url.find("://")
    if start > 0:
        # The authority ends at the first of / ? # (a regex search: a scan per character
        # class cost 5 microseconds a call, four calls a file).
        end = _AUTHORITY_END.search(url, start + 3)
        return _origin(url[:end.start()] if end else url)
    return _origin(url)


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> Origin:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "", "", 0
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)


def check_url(url: str, allow_hosts: tuple[str, ...] = (), trusted: str | None = None) -> None:
    """Refuse what we never fetch: other schemes, no host, hosts outside ``allow_hosts``, and
    link-local addresses that neither ``allow_hosts`` nor ``trusted`` (the job's own API host,
    which the manifest chose) names."""
    scheme, host, _ = origin_of(url)
    if not scheme and not host and _unparsable(url):
        raise errors.UnsafeURLError("refused to fetch a URL that cannot be parsed",
                                    url=redact_url(url))
    if scheme not in DEFAULT_PORTS:
        shown = f"scheme {scheme + ':'!r}" if scheme else "a relative or empty URL"
        raise errors.UnsafeURLError(f"refused to fetch {shown}: only http and https are fetched",
                                    url=redact_url(url))
    if not host:
        raise errors.UnsafeURLError("refused to fetch a URL without a host", url=redact_url(url))
    if ":" in host:  # IPv6: one canonical text, as allow_hosts keeps it
        host = _canonical_ip(host)
        trusted = _canonical_ip(trusted) if trusted else trusted
    if allow_hosts and host not in allow_hosts:
        raise errors.UnsafeURLError(f"host {host!r} is not in allow_hosts", url=redact_url(url))
    if is_link_local(host) and host != trusted and host not in allow_hosts:
        raise errors.UnsafeURLError(_LINK_LOCAL.format(host=host), url=redact_url(url))


_LINK_LOCAL = ("refused to fetch the link-local address {host} (169.254.0.0/16 and fe80::/10 "
               "hold cloud metadata services); name it in the job's allow_hosts to fetch it")


def _canonical_ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def is_link_local(host: str) -> bool:
    """True for a literal link-local address, IPv4 (also mapped into IPv6) or IPv6."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local


class GuardedResolver:
    """DNS that never hands a client a link-local address for a name not in ``allowed``.

    Literal addresses are checked per request by :func:`check_url` (no client resolves
    them); a name is checked here, after resolution, so neither a DNS record nor a redirect
    nor a numeric form such as ``http://2852039166/`` reaches a metadata service. Answers
    are aiohttp's ``ResolveResult`` dicts (``net.session`` hands them to its connector).
    """

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[dict[str, Any]]:
        found = await _lookup(host, port, family)
        if host.lower() in self._allowed:
            return found
        kept = [r for r in found if not is_link_local(r["host"])]
        if not kept and found:
            raise errors.UnsafeURLError(_LINK_LOCAL.format(host=f"{found[0]['host']} (from "
                                                          f"{host})"), url=host)
        return kept


async def _lookup(host: str, port: int, family: socket.AddressFamily) -> list[dict[str, Any]]:
    """getaddrinfo off the loop, as aiohttp's threaded resolver does it."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG)
    found = []
    for fam, _, proto, _, address in infos:
        if fam == socket.AF_INET6 and len(address) > 3 and address[3]:
            # A scoped address (fe80::1%eth0): its scope travels in the numeric text.
            text, _port = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
        else:
            text = str(address[0])
        found.append({"hostname": host, "host": text, "port": address[1], "family": fam,
                      "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})
    return found


def _unparsable(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is what may raise
    except ValueError:
        return True
    return False

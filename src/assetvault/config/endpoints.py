"""Checkers of the keys that say where requests go and what they carry: ``base_url``,
``allow_hosts`` and ``headers`` (whose values are secrets, never quoted)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from assetvault.config.checks import Where, describe, mapping, nonempty, text, unique
from assetvault.config.checks import line_of as _line
from assetvault.config.yaml_nodes import Node
from assetvault.redact import redact_url

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


def base_url(node: Node, where: Where) -> str:
    """An http(s) URL with a host and no query or fragment; trailing slashes removed."""
    value = text(node, where, expected="an http or https URL")
    if not _is_base_url(value):
        raise where.error(
            f"expected an http or https URL with a host and no '?' or '#', such as "
            f"https://api.example.com, got {redact_url(value)!r}", _line(node))
    return value.rstrip("/")


def _is_base_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and not parts.query and not parts.fragment)


def hosts(node: Node, where: Where) -> tuple[str, ...]:
    """Host names, lower-cased: no scheme, path or port."""
    found = nonempty(node, where, "[cdn.example.com]",
                     "an empty list would allow no host at all; remove the key to allow every host")
    out: list[str] = []
    for n in found:
        value = text(n, where, expected="a host name")
        address = ip_literal(value)
        if address is not None:
            out.append(address)
            continue
        if not _HOST.fullmatch(value):
            raise where.error(f"expected a host name such as cdn.example.com, or an IP address "
                              f"(no scheme, path or port), got {describe(n, where)}", _line(n))
        out.append(value.lower())
    return unique(out)


def ip_literal(value: str) -> str | None:
    """An IPv4 or IPv6 address (bare or in brackets) in its one canonical text, else None:
    ``[FE80:0::1]`` and ``fe80::1`` name the same host."""
    try:
        return str(ipaddress.ip_address(value.strip().removeprefix("[").removesuffix("]")))
    except ValueError:
        return None


def headers(node: Node, where: Where) -> tuple[tuple[str, str], ...]:
    """Header name → value; values are secrets and never shown."""
    found = mapping(node, where, "a mapping of header names to values")
    out: dict[str, tuple[str, str]] = {}
    for entry in found.entries.values():
        if not _HEADER_NAME.fullmatch(entry.key):
            # Not quoted: a mis-indented "Authorization Bearer ..." would put a secret in the key.
            raise where.error("a header name may only have letters, digits and !#$%&'*+.^_`|~-; "
                              "write 'Name: value'", entry.key_line)
        if entry.key.lower() in out:
            raise where.error(f"the header {entry.key!r} is given twice (header names ignore case)",
                              entry.key_line)
        value = text(entry.value, where.at(where.key or "headers", secret=True),
                     expected=f"text for the header {entry.key!r}")
        if "\r" in value or "\n" in value:
            raise where.error(f"the value of the header {entry.key!r} has a line break",
                              _line(entry.value))
        out[entry.key.lower()] = (entry.key, value)
    return tuple(out.values())

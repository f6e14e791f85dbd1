"""Checkers for manifest values: each takes a node and where it is, returns a typed value or raises.

Two policies run through them all:

- Text keys take what was written: ``client: 2024`` is the text ``"2024"`` and ``products: [0123]``
  keeps its leading zero, where plain YAML would make them numbers (and 0123 octal).
- Number and yes/no keys take YAML numbers and booleans, never booleans for numbers; text is
  accepted only when it came from ``${...}``, because the environment can only give text.

Secret keys (``Where.secret``) are described by their type, never quoted.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, TypeVar

import msgspec
from msgspec.structs import replace

from assetvault.config.yaml_nodes import (
    Entry,
    InterpolationError,
    Map,
    Node,
    Scalar,
    Seq,
    interpolated,
)
from assetvault.errors import ManifestError

T = TypeVar("T")

SLUG = re.compile(r"[A-Za-z0-9._-]+")
DIGITS = re.compile(r"[0-9]+")
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_SINCE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class Where(msgspec.Struct, frozen=True):
    """Where a value sits (file, job, key) and how to talk about it."""

    file: str
    environ: Mapping[str, str]
    job: str | None = None
    key: str | None = None
    secret: bool = False

    def at(self, key: str, *, secret: bool = False) -> Where:
        return replace(self, key=key, secret=secret)

    def error(self, message: str, line: int | None) -> ManifestError:
        return ManifestError(message, file=self.file, job=self.job, key=self.key, line=line)


Check = Callable[[Node, Where], T]


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """``"; did you mean 'x'?"`` for a close match, else the list of choices."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; expected one of: " + ", ".join(sorted(choices))


def describe(node: Node, where: Where) -> str:
    """What the user wrote, for a message: quoted when short and not a secret, else its type."""
    if isinstance(node, Seq):
        return "a list"
    if isinstance(node, Map):
        return "a mapping"
    kind = {"str": "text", "int": "a whole number", "float": "a number",
            "bool": "a yes/no value", "null": "nothing", "timestamp": "a date"}[node.tag]
    if node.tag == "null":
        return "nothing (an empty value)"
    if where.secret:
        return kind
    if isinstance(node, Scalar) and node.from_env:
        # The same variable may feed a token elsewhere: never echo what came from ${...}.
        return f"{kind} from an environment variable"
    if node.tag in ("int", "float"):
        return node.text
    shown = node.text if len(node.text) <= 40 else node.text[:37] + "..."
    return f"{shown!r}" + ("" if node.tag == "str" else f" ({kind})")


def scalar(node: Node, where: Where, expected: str) -> Scalar:
    """The node as an interpolated scalar with a value, or an error saying what was expected."""
    if not isinstance(node, Scalar) or node.tag == "null":
        raise where.error(f"expected {expected}, got {describe(node, where)}", _line(node))
    try:
        return interpolated(node, where.environ)
    except InterpolationError as exc:
        raise where.error(exc.message, node.line) from None


def text(node: Node, where: Where, *, pattern: re.Pattern[str] | None = None,
         expected: str = "text") -> str:
    """Non-empty text as written (stripped); with ``pattern``, it must match it whole."""
    found = scalar(node, where, expected)
    value = found.text.strip()
    if not value:
        hint = " (from an empty environment variable)" if _from_env(node, where) else ""
        raise where.error(f"expected {expected}, got an empty value{hint}", _line(node))
    if pattern is not None and not pattern.fullmatch(value):
        got = "text that does not fit" if where.secret or found.from_env else repr(value)
        raise where.error(f"expected {expected}, got {got}", _line(node))
    return value


def credential(node: Node, where: Where) -> str:
    """A token or key: text that can go into a header or a query without breaking it."""
    value = text(node, where)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise where.error("the value has a line break or control character; write it on one line",
                          _line(node))
    return value


def slug(node: Node, where: Where) -> str:
    """A name used in URLs and archive paths: letters, digits, '.', '_' and '-'."""
    value = text(node, where, pattern=SLUG, expected="a name of letters, digits, '.', '_' or '-'")
    if value in (".", ".."):
        raise where.error(f"{value!r} cannot be used as a name", _line(node))
    return value


def whole(node: Node, where: Where, *, minimum: int, maximum: int | None = None) -> int:
    """A whole number in a range; YAML booleans are not numbers."""
    expected = (f"a whole number ≥ {minimum}" if maximum is None
                else f"a whole number from {minimum} to {maximum}")
    value, s = _number(node, where, expected, integer=True)
    if value < minimum or (maximum is not None and value > maximum):
        raise where.error(f"expected {expected}, got {describe(s, where)}", s.line)
    return int(value)


def number(node: Node, where: Where, *, minimum: float, inclusive: bool = True) -> float:
    """A finite number, ≥ minimum (or > minimum when not inclusive)."""
    expected = f"a number {'≥' if inclusive else '>'} {minimum:g}"
    value, s = _number(node, where, expected, integer=False)
    if value < minimum or (not inclusive and value == minimum):
        raise where.error(f"expected {expected}, got {describe(s, where)}", s.line)
    return float(value)


def _number(node: Node, where: Where, expected: str, *, integer: bool
            ) -> tuple[int | float, Scalar]:
    s = scalar(node, where, expected)
    if s.tag == "int" and isinstance(s.value, int):
        return s.value, s
    if s.tag == "float" and not integer and isinstance(s.value, float) and math.isfinite(s.value):
        return s.value, s
    pattern = _INT if integer else _FLOAT
    if s.tag == "str" and pattern.fullmatch(s.text.strip()):
        if s.from_env:
            return (int(s.text) if integer else float(s.text)), s
        raise where.error(f"expected {expected}, got the text {describe(s, where)}; remove the "
                          "quotes", s.line)
    raise where.error(f"expected {expected}, got {describe(s, where)}", s.line)


def boolean(node: Node, where: Where) -> bool:
    """true or false (YAML's yes/no/on/off too)."""
    s = scalar(node, where, "true or false")
    if s.tag == "bool" and isinstance(s.value, bool):
        return s.value
    word = s.text.strip().lower()
    if s.tag == "str" and word in _BOOLS:
        if s.from_env:
            return _BOOLS[word]
        raise where.error(f"expected true or false, got the text {describe(s, where)}; remove the "
                          "quotes", s.line)
    raise where.error(f"expected true or false, got {describe(s, where)}", s.line)


_PREFIXES = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_SIZE = re.compile(
    r"\s*(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*"
    r"(?P<prefix>[kKmMgGtTpP]?)(?P<binary>i?)(?P<unit>B?)\s*"
)
_MAX_SIZE = Decimal(2**63 - 1)


def parse_size(value: str | int | float) -> int:
    """Bytes from a size: ``1000``, ``"50MB"`` (10^6), ``"1.5MiB"`` (2^20), ``"2k"``, ``"10GiB"``.

    Prefixes k, M, G, T, P in either case are powers of 1000, with ``i`` powers of 1024; a trailing
    ``B`` is optional; a lower-case ``b`` (bits) is refused rather than guessed. Fractions round
    up, so a size that is not zero never becomes 0 (which means "unlimited" for bandwidth).
    Raises ValueError for anything else, for negative sizes and for sizes past 2^63.
    """
    if isinstance(value, bool):
        raise ValueError("a yes/no value is not a size")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        amount = Decimal(repr(value))
    else:
        amount = _parse_size_text(value)
    if amount < 0:
        raise ValueError("a size cannot be negative")
    if amount > _MAX_SIZE:
        raise ValueError("too large")
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def _parse_size_text(value: str) -> Decimal:
    match = _SIZE.fullmatch(value)
    if match is None or (match["binary"] and not match["prefix"]):
        raise ValueError(f"not a size: {value!r}")
    base = 1024 if match["binary"] else 1000
    try:
        number_ = Decimal(match["num"])
    except InvalidOperation:
        raise ValueError(f"not a size: {value!r}") from None
    # Compare before multiplying: "1e999999999" would otherwise build an enormous integer.
    if number_ > _MAX_SIZE:
        raise ValueError("too large")
    return Decimal(number_ * base ** _PREFIXES[match["prefix"].lower()])


def size(node: Node, where: Where, *, minimum: int) -> int:
    """A size in bytes (see parse_size), ≥ minimum."""
    expected = f"a size in bytes ≥ {minimum}, such as 0, 2000000, 50MB or 1.5MiB"
    s = scalar(node, where, expected)
    raw: str | int | float = s.value if isinstance(s.value, int | float) else s.text
    try:
        if s.tag not in ("str", "int", "float"):
            raise ValueError(s.tag)
        value = parse_size(raw)
    except ValueError:
        raise where.error(f"expected {expected}, got {describe(s, where)}", s.line) from None
    if value < minimum:
        raise where.error(f"expected {expected}, got {describe(s, where)}", s.line)
    return value


def items(node: Node, where: Where, example: str) -> tuple[Node, ...]:
    """The items of a list (empty lists are the caller's call)."""
    if not isinstance(node, Seq):
        raise where.error(f"expected a list such as {example}, got {describe(node, where)}",
                          _line(node))
    return node.items


def nonempty(node: Node, where: Where, example: str, why: str) -> tuple[Node, ...]:
    """The items of a list that must not be empty."""
    found = items(node, where, example)
    if not found:
        raise where.error(f"the list is empty; {why}", _line(node))
    return found


def unique(values: list[str]) -> tuple[str, ...]:
    """Values in first-seen order, without repeats."""
    return tuple(dict.fromkeys(values))


def ids(node: Node, where: Where) -> tuple[str, ...]:
    """Numeric ids, written as numbers or digit strings, kept as text (leading zeros too)."""
    found = items(node, where, "[1001, 1002]")
    return unique([text(n, where, pattern=DIGITS, expected="an id made of digits") for n in found])


ALL: Final = "all"


def ids_or_all(node: Node, where: Where) -> tuple[str, ...] | Literal["all"]:
    """An id list (see :func:`ids`), or the word ``all``: every owner the account lists."""
    if isinstance(node, Seq):
        return ids(node, where)
    expected = "a list of ids such as [1001, 1002], or the word all"
    hint = ""
    if isinstance(node, Scalar) and node.tag == "str":
        value = text(node, where, expected=expected)
        if value == ALL:
            return ALL
        hint = "; write it in lower case: all" if value.lower() == ALL else ""
    raise where.error(f"expected {expected}, got {describe(node, where)}{hint}", _line(node))


def choices(node: Node, where: Where, allowed: Collection[str]) -> frozenset[str]:
    """A non-empty subset of ``allowed``."""
    example = "[" + ", ".join(sorted(allowed)) + "]"
    found = nonempty(node, where, example, f"list at least one of {example} or remove the key")
    out: set[str] = set()
    for n in found:
        value = text(n, where)
        if value not in allowed:
            raise where.error(f"{value!r} is not a choice here{did_you_mean(value, allowed)}",
                              _line(n))
        out.add(value)
    return frozenset(out)


def mapping(node: Node, where: Where, expected: str) -> Map:
    """A mapping without duplicate keys."""
    if not isinstance(node, Map):
        raise where.error(f"expected {expected}, got {describe(node, where)}", _line(node))
    no_duplicates(node, where)
    return node


def no_duplicates(node: Map, where: Where) -> None:
    """Refuse a key written twice: YAML would silently keep only the last one."""
    if node.duplicates:
        first, again = node.duplicates[0]
        raise replace(where, key=again.key).error(
            f"the key appears twice (lines {first.key_line} and {again.key_line}); YAML would keep "
            "only the last one, so remove or merge one of them", again.key_line)


def since(node: Node, where: Where) -> str:
    """``last-run`` or a UTC time ``YYYY-MM-DD HH:MM:SS`` (YAML's timestamp is taken as written)."""
    expected = "last-run or a UTC time written YYYY-MM-DD HH:MM:SS"
    value = text(node, where, expected=expected)
    if value == "last-run":
        return value
    try:
        if not _SINCE.fullmatch(value):
            raise ValueError(value)
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise where.error(f"expected {expected}, got {value!r}", _line(node)) from None
    return value


def _from_env(node: Node, where: Where) -> bool:
    return isinstance(node, Scalar) and interpolated(node, where.environ).from_env


def line_of(node: Node) -> int:
    return node.line


_line = line_of


def value_of(entry: Entry, where: Where, *, required: bool = False) -> Node:
    """A key's value; a key written with none (``key:``) says what to do about it."""
    if isinstance(entry.value, Scalar) and entry.value.tag == "null":
        fix = "give it one" if required else "give it one or remove the key to use the default"
        raise where.error(f"the key has no value; {fix}", entry.key_line)
    return entry.value

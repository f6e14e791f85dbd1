"""Manifest text → a small tree of scalars, lists and mappings that remember their lines.

PyYAML's ``safe_load`` forgets where each value was and silently keeps the last of two duplicate
keys; walking ``yaml.compose`` nodes keeps both facts, so every later error can name a line.
Nothing here knows what the keys mean (that is ``manifest.py``); nothing here raises about a
duplicate key either, because only the caller knows which job the mapping belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import msgspec
import yaml
from msgspec import field
from msgspec.structs import replace
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from assetvault.errors import ManifestError

_YAML_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "null", "timestamp"})
_MERGE_TAG = _YAML_TAG + "merge"
# Stateless for the three methods used: each only reads the node it is given.
_CONSTRUCT = SafeConstructor()


class Scalar(msgspec.Struct, frozen=True):
    """One scalar: ``text`` as written (without quotes), ``value`` what YAML made of it."""

    text: str
    tag: str  # "str", "int", "float", "bool", "null" or "timestamp"
    value: object
    line: int
    quoted: bool = False
    from_env: bool = False  # the text came, at least in part, from ${...}


class Seq(msgspec.Struct, frozen=True):
    """A YAML sequence."""

    items: tuple[Node, ...]
    line: int


class Entry(msgspec.Struct, frozen=True):
    """One key of a mapping, with the line of the key itself."""

    key: str
    key_line: int
    value: Node


class Map(msgspec.Struct, frozen=True):
    """A YAML mapping; ``entries`` keeps the first of duplicate keys, ``duplicates`` the pairs."""

    entries: Mapping[str, Entry]
    line: int
    duplicates: tuple[tuple[Entry, Entry], ...] = field(default=())


Node = Scalar | Seq | Map


def read_text(path: Path) -> str:
    """The manifest's text, or a ManifestError that names the file and says why it is unusable."""
    file = str(path)
    if path.is_dir():
        raise ManifestError("is a folder, not a manifest file; give the path of the YAML file",
                            file=file)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError("no such file; check the path", file=file) from None
    except PermissionError:
        raise ManifestError("cannot be read (permission denied)", file=file) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read ({exc.strerror or exc})", file=file) from None
    try:
        # utf-8-sig: editors on Windows like to start the file with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            file=file, line=line,
        ) from None


def parse(text: str, file: str) -> Node | None:
    """The document as a tree of nodes; None for an empty document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        return None if root is None else _walk(root, file, {}, set())
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file) from None
    except yaml.YAMLError as exc:
        # Unmarked errors (a reader error on a control character) still must not echo the text.
        raise ManifestError(f"is not valid YAML ({type(exc).__name__})", file=file) from None
    except RecursionError:
        raise ManifestError("is nested too deeply to be a manifest", file=file) from None


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> ManifestError:
    # Only problem and context: str(exc) quotes the offending source line, which may hold a token.
    mark = exc.problem_mark or exc.context_mark
    line = None if mark is None else mark.line + 1
    reason = "; ".join(part for part in (exc.problem, exc.context) if part) or "syntax error"
    if exc.context_mark is not None and exc.context_mark.line + 1 != line:
        reason += f" (which began on line {exc.context_mark.line + 1})"
    return ManifestError(
        f"not valid YAML: {reason}; check indentation, colons and quotes on this line or the "
        "one before", file=file, line=line,
    )


def _walk(node: yaml.Node, file: str, memo: dict[int, Node], active: set[int]) -> Node:
    # Aliases share node objects: memoising keeps "billion laughs" linear, `active` stops cycles.
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ManifestError("an alias (*name) refers to itself", file=file, line=_line(node))
    active.add(key)
    try:
        result = _convert(node, file, memo, active)
    finally:
        active.discard(key)
    memo[key] = result
    return result


def _convert(node: yaml.Node, file: str, memo: dict[int, Node], active: set[int]) -> Node:
    if isinstance(node, ScalarNode):
        return _scalar(node, file)
    if isinstance(node, SequenceNode) and node.tag == _YAML_TAG + "seq":
        return Seq(tuple(_walk(item, file, memo, active) for item in node.value), _line(node))
    if isinstance(node, MappingNode) and node.tag == _YAML_TAG + "map":
        return _mapping(node, file, memo, active)
    raise _tag_error(node, file)


def _scalar(node: ScalarNode, file: str) -> Scalar:
    tag = node.tag.removeprefix(_YAML_TAG)
    if not node.tag.startswith(_YAML_TAG) or tag not in _SCALAR_TAGS:
        raise _tag_error(node, file)
    value: object = node.value
    if tag == "int":
        value = _CONSTRUCT.construct_yaml_int(node)
    elif tag == "float":
        value = _CONSTRUCT.construct_yaml_float(node)
    elif tag == "bool":
        value = _CONSTRUCT.construct_yaml_bool(node)
    elif tag == "null":
        value = None
    return Scalar(node.value, tag, value, _line(node), quoted=node.style in ("'", '"'))


def _mapping(node: MappingNode, file: str, memo: dict[int, Node], active: set[int]) -> Map:
    entries: dict[str, Entry] = {}
    duplicates: list[tuple[Entry, Entry]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise ManifestError("a key must be plain text, not a list or mapping", file=file,
                                line=_line(key_node))
        # The merge key is kept as a plain "<<" so the caller can say it is not supported.
        key = key_node.value
        entry = Entry(key, _line(key_node), _walk(value_node, file, memo, active))
        if key in entries:
            duplicates.append((entries[key], entry))
        else:
            entries[key] = entry
    return Map(entries, _line(node), tuple(duplicates))


def _tag_error(node: yaml.Node, file: str) -> ManifestError:
    return ManifestError(
        f"the YAML tag {node.tag!r} is not supported; write plain values, lists and mappings",
        file=file, line=_line(node),
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


# ${NAME}, ${NAME:-fallback}, $$; a "${" that matches neither form is an error, not literal text.
_REFERENCE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<fallback>[^}$]*))?\}|(?P<dollar>\$\$)|(?P<bad>\$\{)"
)


class InterpolationError(ValueError):
    """A ``${...}`` that cannot be replaced; ``variable`` is the name when one was readable."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.variable = variable


def interpolate(text: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """``text`` with ``${NAME}``, ``${NAME:-fallback}`` and ``$$`` replaced; and whether any
    variable was used. Like the shell, the fallback also applies when the variable is empty."""
    if "$" not in text:
        return text, False
    used = False
    out: list[str] = []
    last = 0
    for match in _REFERENCE.finditer(text):
        out.append(text[last:match.start()])
        last = match.end()
        if match["dollar"]:
            out.append("$")
            continue
        if match["bad"]:
            raise InterpolationError(
                "a '${' is not followed by NAME} or NAME:-fallback}; names are letters, digits and"
                " '_', the fallback cannot contain '}' or '$'; write '$$' for a literal '$'"
            )
        used = True
        out.append(_lookup(match["name"], match["fallback"], environ))
    out.append(text[last:])
    return "".join(out), used


def _lookup(name: str, fallback: str | None, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if fallback is not None:
        return value if value else fallback
    if value is None:
        raise InterpolationError(
            f"the environment variable {name} is not set; export it, or write "
            f"${{{name}:-fallback}} to give a value for when it is missing",
            variable=name,
        )
    return value


def interpolated(node: Scalar, environ: Mapping[str, str]) -> Scalar:
    """The scalar with ``${...}`` replaced when it is text (numbers and booleans have none)."""
    if node.tag != "str":
        return node
    text, used = interpolate(node.text, environ)
    if text == node.text and not used:
        return node
    return replace(node, text=text, value=text, from_env=used)

"""Checkers of the values only one source's keys take: organizations, output formats, version
names, a urls_file, and the ids of a kind that has no list."""

from __future__ import annotations

from pathlib import Path

from assetvault.config import checks as check
from assetvault.config.checks import Where
from assetvault.config.yaml_nodes import Node, Scalar


def unlisted(node: Node, where: Where) -> tuple[str, ...]:
    """The ids of a kind that the API cannot list (restaurants): ``all`` is refused."""
    if isinstance(node, Scalar) and node.tag == "str" and check.scalar(
            node, where, "a list of ids").text.strip() == check.ALL:
        raise where.error(
            f"{where.key} cannot be 'all': the OnPremise API has no list of them (a "
            "restaurant's id is the account's own); list the ids instead, e.g. "
            f"{where.key}: [3001]", node.line)
    return check.ids(node, where)


def organizations(node: Node, where: Where) -> tuple[str, ...]:
    found = check.nonempty(node, where, '["7000000000000300322"]', "list at least one organization")
    return check.unique([check.slug(n, where) for n in found])


def formats(node: Node, where: Where) -> frozenset[str]:
    found = check.nonempty(node, where, "[dst, png, pdf]", "to keep no outputs write "
                           "include: [original]; to keep all, remove the key")
    out = set()
    for n in found:
        value = check.text(n, where, expected="a file extension such as png").lower()
        value = value.removeprefix(".")
        if not check.SLUG.fullmatch(value):
            raise where.error(f"expected a file extension such as png, got {value!r}", n.line)
        out.add(value)
    return frozenset(out)


def versions(node: Node, where: Where) -> frozenset[str]:
    found = check.nonempty(node, where, "[web_thumb]", "to keep no versions write "
                           "include: [original]; to keep all, remove the key")
    return frozenset(check.text(n, where, expected="a version name") for n in found)


def urls_file(node: Node, where: Where, folder: Path) -> Path:
    raw = check.text(node, where, expected="the path of a text or CSV file of URLs")
    path = (folder / Path(raw).expanduser()).resolve()
    problem = _unreadable(path)
    if problem:
        raise where.error(f"{problem}: '{path}' (a relative path starts from the manifest's "
                          "folder)", node.line)
    return path


def _unreadable(path: Path) -> str | None:
    try:
        if not path.exists():
            return "no such file"
        if not path.is_file():  # a folder, or a FIFO that open() would block on
            return "not a regular file"
        with path.open("rb"):
            return None
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or type(exc).__name__})"

"""Pure layout: where each item goes under ``data/``, and the names that make it safe.

Every segment of every payload path passes through :func:`safe_segment`, which is injective:
a name that is already safe stays as it is; any other name gets a short hash of the raw name
before its extension (``logo~1a2b3c4d5e6f.png``), so two raw names never share a path.
:func:`inside` is the last guard before a path touches the disk.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import re
import unicodedata
from urllib.parse import unquote, urlsplit

MAX_SEGMENT_BYTES = 255  # the common limit of ext4, APFS, NTFS (NTFS counts UTF-16, lower)
HASH_CHARS = 12  # 48 bits: no birthday collision in practice even among millions of names
MAX_EXT_BYTES = 32  # a longer "extension" is just part of the name when cutting
# A whole urls path under data/ (a CSV may nest a name thousands of folders deep): past this
# the system's PATH_MAX (4,096 with the archive's own path) would fail the file, and 1,024
# is the limit of macOS and of many tools a bag is copied with.
MAX_PATH_BYTES = 1024

# '%' too: bagit-python never decodes the %25 that RFC 8493 asks manifests to write for it
# (LibraryOfCongress/bagit-python#157), so a payload name with '%' would fail its validator.
_INVALID = re.compile(r'[/\\<>:"|?*%]')
_HASHED = re.compile(rf"~[0-9a-f]{{{HASH_CHARS}}}(\.[^.]*)?\Z")
_EXT = re.compile(r"\.[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*\Z")  # ".png", ".mp3"; not ".2" in "v1.2"
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
# Types whose first-listed extension is not the one people expect, or that Python's built-in
# table lacks. The built-in table (not /etc/mime.types) keeps the choice the same on every host.
_PREFERRED_EXT = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/tiff": ".tif",
    "text/plain": ".txt",
    "application/octet-stream": "",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/msword": ".doc",
    "application/postscript": ".eps",
    "image/vnd.adobe.photoshop": ".psd",
}


def short_hash(text: str, chars: int = HASH_CHARS) -> str:
    """A short, deterministic hex digest of any text (lone surrogates included)."""
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()[:chars]


def safe_segment(name: str) -> str:
    """``name`` as one safe path segment, different for every different ``name``.

    The result is NFC, non-empty, at most 255 bytes of UTF-8, without ``/``, ``\\``, NUL, control
    characters or ``<>:"|?*``, never ``.``/``..``, never a Windows device name, never ending in a
    dot or a space.
    """
    if name.isdigit() and name.isascii() and len(name) <= MAX_SEGMENT_BYTES:
        return name  # an id: safe as it is, and unique, so not worth a place in the cache
    return _safe_segment(name)


@functools.lru_cache(maxsize=1 << 14)  # hosts, folders and job names repeat on every line
def _safe_segment(name: str) -> str:
    clean = _clean(name)
    encoded = len(clean.encode())
    if clean == name and encoded <= MAX_SEGMENT_BYTES and not _HASHED.search(name):
        return name
    # A clean name that merely looks hashed is hashed too: that keeps hashed and clean apart.
    stem, ext = split_ext(clean)
    return _fit(stem, "~" + short_hash(name) + ext)


def _clean(name: str) -> str:
    if name.isascii() and name.isprintable():  # the common case: nothing to drop, already NFC
        text = name
    else:
        kept = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cs"))
        text = unicodedata.normalize("NFC", kept)
    text = _INVALID.sub("_", text).rstrip(". ")
    if not text:
        return "_"
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        return "_" + text
    return text


def split_ext(name: str) -> tuple[str, str]:
    """(stem, extension) of a segment; the extension is kept whole when a name is cut."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) + 1 > MAX_EXT_BYTES:
        return name, ""
    return stem, "." + ext


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` cut to the byte limit by shortening the stem at a character boundary."""
    room = MAX_SEGMENT_BYTES - len(tail.encode())
    data = stem.encode()
    if len(data) > room:
        stem = data[:room].decode("utf-8", "ignore")  # drops a split multi-byte character
        stem = unicodedata.normalize("NFC", stem)
        while len(stem.encode()) > room:  # NFC of a cut string can in theory grow
            stem = stem[:-1]
    return stem + tail


def tagged(segment: str, tag: str) -> str:
    """A safe segment with ``~tag`` before its extension: the disambiguation of a taken name.

    ``segment`` must come from :func:`safe_segment`; ``tag`` is ASCII letters and digits.
    """
    stem, ext = split_ext(segment)
    return _fit(stem, f"~{tag}{ext}")


def extension_for(url: str, content_type: str | None = None) -> str:
    """The lower-case extension (``".png"``) of the URL's last path segment, else of the type.

    Returns ``""`` when neither gives one.
    """
    match = _EXT.search(_last_segment(url))
    if match:
        return match.group().lower()
    return extension_for_type(content_type)


def extension_for_type(content_type: str | None) -> str:
    """The usual extension of a media type (``image/jpeg`` → ``.jpg``), or ``""``."""
    if not content_type:
        return ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _PREFERRED_EXT:
        return _PREFERRED_EXT[mime]
    return _mime_types().guess_extension(mime, strict=False) or ""


@functools.cache
def _mime_types() -> mimetypes.MimeTypes:
    # Built on first use: the table costs ~10 ms, a third of this package's import time, and a
    # run whose URLs all name their extension never asks it.
    return mimetypes.MimeTypes()


def _last_segment(url: str) -> str:
    if ("?" in url or "#" in url or "[" in url or "]" in url or "://" not in url
            or url.count("/") < 3 or not url.isascii() or not url.isprintable()):
        try:
            url = urlsplit(url).path
        except ValueError:
            return ""
    # else the last "/" is in the path: urlsplit would give the same (and cost 3 µs a URL)
    return unquote(url.rpartition("/")[2], errors="surrogateescape")


def file_name_from_url(url: str) -> str:
    """The URL's last path segment, percent-decoded and sanitised; ``"file"`` when empty."""
    name = _last_segment(url)
    return safe_segment(name) if name else "file"


def spectrum_dir(client: str, org: str, content_id: str) -> str:
    """``spectrum/{client}/{org}/{content id}``: the folder of one content record."""
    return f"spectrum/{safe_segment(client)}/{safe_segment(org)}/{safe_segment(content_id)}"


def spectrum_job_dir(job_id: str, reference: str | None) -> str:
    """``{job id}-{reference}``: one production job's folder name under ``jobs/``."""
    return safe_segment(f"{job_id}-{reference}" if reference else job_id)


# The file of an owner's own record, beside its assets' folders (``products: all``).
OWNER_RECORDS = {"products": "product.json", "beers": "beer.json", "menu_items": "menu_item.json"}
_RECORD_NAMES = frozenset(OWNER_RECORDS.values())


def onpremise_owner_dir(kind: str, owner: str) -> str:
    """``onpremise/{kind}/{id}``: the folder of one product (beer, restaurant, menu item)."""
    return f"onpremise/{safe_segment(kind)}/{safe_segment(owner)}"


def onpremise_dir(kind: str, owner: str, asset_id: str) -> str:
    """``onpremise/{kind}/{id}/{asset id}``: the folder of one OnPremise asset."""
    segment = safe_segment(asset_id)
    if segment in _RECORD_NAMES:  # an asset id "product.json" must not take the record's place
        segment = tagged(segment, short_hash(asset_id))
    return f"{onpremise_owner_dir(kind, owner)}/{segment}"


def onpremise_record(kind: str, owner: str) -> str:
    """``onpremise/{kind}/{id}/{product|beer|menu_item}.json``: an owner's own record."""
    return f"{onpremise_owner_dir(kind, owner)}/{OWNER_RECORDS[kind]}"


def suffix(path: str) -> str:
    """The extension of a relative path's last segment, as ``PurePosixPath.suffix`` gives it."""
    name = path.rpartition("/")[2]
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def replaceable_stem(key: str) -> str | None:
    """The key of a file whose extension follows its URL, without that extension: one name
    whatever the extension (``spectrum/c/o/1/original``, ``onpremise/products/1/2/versions/
    web_thumb``). None for any other key: an output or a urls path is named by its URL, so
    another name there is another file."""
    if "/original" not in key and "/versions/" not in key:
        return None  # most keys (outputs, urls paths): one scan in C, no split
    parts = key.split("/")
    if len(parts) == 5 and parts[0] in ("spectrum", "onpremise"):
        name = parts[4]
        if name == "original" or (name.startswith("original.") and name.count(".") == 1):
            return key.rpartition("/")[0] + "/original"
        return None
    if len(parts) == 6 and parts[0] == "onpremise" and parts[4] == "versions":
        return key[: len(key) - len(suffix(key))]
    return None


def named(name: str, ext: str) -> str:
    """``{name}{ext}`` as a safe segment (``original.png``, ``web_thumb.jpg``). A name that is
    empty (or only dots and spaces) would make a hidden ``.jpg``: it is ``unnamed~{hash}``."""
    if not name.strip(" ."):
        return _fit("unnamed", "~" + short_hash(name) + _clean(ext))
    return safe_segment(name + ext)


def urls_path(job: str, url: str, csv_path: str | None) -> str:
    """``urls/{job}/{csv path}``, or ``urls/{job}/{host}/{path of the URL}`` without one.

    A CSV path is split on ``/`` and ``\\``; empty and ``.`` parts are dropped. A URL path that
    ends in ``/`` gets the file name ``index``.
    """
    parts = _csv_parts(csv_path) if csv_path else []
    if not parts:
        parts = _url_parts(url)
    path = "/".join(["urls", safe_segment(job), *(safe_segment(p) for p in parts)])
    if len(path) > MAX_PATH_BYTES // 4 and len(path.encode()) > MAX_PATH_BYTES:
        return _shortened(path, parts)
    return path


def _shortened(path: str, parts: list[str]) -> str:
    """An over-long path as its leading folders that fit, then ``~{hash of every raw part}``
    (a segment no name can take: :func:`safe_segment` hashes a name of that form), then the
    file name: as unique as the raw path, and stable from run to run."""
    *folders, name = path.split("/")
    tail = f"~{short_hash(chr(0).join(parts))}/{name}"
    room = MAX_PATH_BYTES - len(tail.encode()) - 1
    kept: list[str] = []
    for folder in folders:
        room -= len(folder.encode()) + 1
        if room < 0:
            break
        kept.append(folder)
    return "/".join([*kept, tail])


def _csv_parts(csv_path: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", csv_path) if p not in ("", ".")]


def _url_parts(url: str) -> list[str]:
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return ["_invalid", url]
    host = (split.hostname or "") + (f"_{port}" if port else "")
    segments = [unquote(s, errors="surrogateescape") for s in split.path.split("/")]
    segments = [s for s in segments[1:-1] if s] + [segments[-1] or "index"]
    return [host, *segments]

"""Keep secrets out of everything assetvault shows or stores.

Two layers: URLs lose the values of credential query parameters (``api_key=***``), and any text
can be scrubbed of the literal secret values a manifest holds (tokens, keys, header values).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose values are credentials, compared case-insensitively.
SECRET_PARAMS = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "sig", "signature", "password", "secret"}
)

def _name_pattern(name: str) -> str:
    """A parameter name as it may be written in a URL: each character itself or %-encoded
    (``api%5Fkey`` is ``api_key`` to every server)."""
    return "".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in name)


_SECRET_PARAM_RE = re.compile(
    r"(?i)([?&;#](?:" + "|".join(_name_pattern(n) for n in sorted(SECRET_PARAMS, key=len,
                                                                  reverse=True))
    + r")=)[^&#\s\"']*"
)


def redact_url(url: str) -> str:
    """The URL with credential query values and any userinfo password replaced by ``***``.

    A secret under a parameter name nobody would guess is masked only by a :class:`Redactor`
    that knows the value (``Redactor.url``): the run's redactor is passed to whatever stores
    or shows a URL, never kept in a global.
    """
    if "?" not in url and "@" not in url and ";" not in url and "#" not in url:
        return url  # nothing that can hold a credential (the common case, by far)
    try:
        parts = urlsplit(url)
    except ValueError:
        return _SECRET_PARAM_RE.sub(r"\1" + MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    # The pattern too: a ``;`` between parameters (which parse_qsl no longer splits on) or a
    # fragment may carry one the pairs above did not show.
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _SECRET_PARAM_RE.sub(r"\1" + MASK, rebuilt)


def redact_text(text: str) -> str:
    """Credential query values inside free text (error messages, URLs in JSON)."""
    if "=" not in text:  # no parameter at all: a scan at C speed spares the regex its walk
        return text
    return _SECRET_PARAM_RE.sub(r"\1" + MASK, text)


class Redactor:
    """Scrubs known secret values and credential parameters from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        # Each secret as JSON may write it too (escaped quotes, \\u escapes): all forms.
        forms = {form for secret in self._secrets
                 for form in (secret, json.dumps(secret, ensure_ascii=False)[1:-1],
                              json.dumps(secret)[1:-1])}
        self._forms = sorted(forms, key=len, reverse=True)
        self._forms_bytes = [form.encode("utf-8", "surrogatepass") for form in self._forms]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_text(text)

    def url(self, url: str) -> str:
        """The URL as it may be stored and shown: known secret values (anywhere in it) and
        credential parameters masked. Every stored URL is this form, so a re-run compares
        like with like."""
        for secret in self._secrets:
            if secret in url:
                url = url.replace(secret, MASK)
        return redact_url(url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values this redactor scrubs."""
        return tuple(self._secrets)

    def appears_in(self, data: bytes | bytearray) -> bool:
        """Whether any secret, in any of its JSON forms, is in these UTF-8 bytes."""
        return any(form in data for form in self._forms_bytes)

    def json_text(self, text: str) -> str:
        """Scrub serialised JSON: each secret also in the escaped form JSON gives it."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return redact_text(text)

"""Fault injection: a plan parsed from a string, consulted once per request.

Grammar: comma-separated rules ``SCOPE:KIND[@TRIGGER][:PARAM=VALUE...]`` (see the package
docstring). Decisions are reproducible: a probability is drawn from a hash of (seed, rule, path,
n-th request to that path), so the same requests get the same faults whatever their interleaving.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from .detrand import hnum

__all__ = ["BODY_KINDS", "FILE_KINDS", "STATUS_KINDS", "Decision", "FaultPlan", "FaultRule"]

SCOPES = ("spectrum", "onpremise", "files", "api", "*")
STATUS_KINDS = ("500", "503", "429", "403")
BODY_KINDS = ("reset", "truncate", "stall", "slow", "trickle")
# Hostile upstreams (files): each changes how a file is answered, not whether.
REDIRECT_KINDS = ("redirect-loop", "linklocal")
FILE_KINDS = ("badmd5", "change", "gzip", "ignore-if-range", *REDIRECT_KINDS)
KINDS = (*STATUS_KINDS, *BODY_KINDS, *FILE_KINDS)
_PARAMS = {
    "retry-after": STATUS_KINDS, "seconds": ("stall", "trickle"), "rate": ("slow",),
    "fraction": ("reset", "truncate", "stall"),
}


@dataclass(frozen=True)
class FaultRule:
    """One rule; ``probability`` and ``first`` are the trigger (both None: always)."""

    scope: str
    kind: str
    probability: float | None = None
    first: int | None = None
    retry_after: str | None = None
    seconds: float = 30.0
    rate: float = 10_000.0
    fraction: float = 0.5

    def covers(self, scope: str) -> bool:
        return self.scope in ("*", scope) or (self.scope == "api" and scope != "files")

    def retry_after_value(self, now: datetime | None = None) -> str | None:
        """The ``Retry-After`` header: ``S`` seconds, or an HTTP date S seconds ahead."""
        if self.retry_after is None or not self.retry_after.startswith("date"):
            return self.retry_after
        ahead = float(self.retry_after[4:].lstrip("+") or 1)
        when = (now or datetime.now(UTC)) + timedelta(seconds=ahead)
        # An HTTP date has whole seconds: round up so it is never earlier than promised.
        when = when.replace(microsecond=0) + timedelta(seconds=1 if when.microsecond else 0)
        return format_datetime(when, usegmt=True)


@dataclass(frozen=True)
class Decision:
    """What to do to one request; the default does nothing."""

    status: FaultRule | None = None
    body: FaultRule | None = None
    badmd5: bool = False
    variant: int = 0
    gzip: bool = False
    ignore_if_range: bool = False
    redirect: str | None = None  # one of REDIRECT_KINDS


NO_FAULT = Decision()


@dataclass
class FaultPlan:
    """Rules plus the per-path request counters their triggers need."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0
    _seen: Counter[str] = field(default_factory=Counter, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> FaultPlan:
        """Parse ``SCOPE:KIND[@TRIGGER][:PARAM=VALUE...]`` rules; ValueError names the bad rule."""
        rules = [_parse_rule(text.strip()) for text in (spec or "").split(",") if text.strip()]
        return cls(tuple(rules), seed)

    def decide(self, scope: str, path: str) -> Decision:
        """The faults for this request (``scope``: spectrum, onpremise or files)."""
        if not self.rules:
            return NO_FAULT
        nth = 0
        # Only triggers and churn need per-path counts; unconditional rules keep no state.
        if any(r.first is not None or r.probability is not None or r.kind == "change"
               for r in self.rules):
            with self._lock:
                self._seen[path] += 1
                nth = self._seen[path]
        fired = [(i, r) for i, r in enumerate(self.rules)
                 if r.covers(scope) and self._fires(i, r, path, nth)]
        return Decision(
            status=next((r for _, r in fired if r.kind in STATUS_KINDS), None),
            body=next((r for _, r in fired if r.kind in BODY_KINDS), None),
            badmd5=any(r.kind == "badmd5" for _, r in fired),
            variant=nth if any(r.kind == "change" for _, r in fired) else 0,
            gzip=any(r.kind == "gzip" for _, r in fired),
            ignore_if_range=any(r.kind == "ignore-if-range" for _, r in fired),
            redirect=next((r.kind for _, r in fired if r.kind in REDIRECT_KINDS), None),
        )

    def _fires(self, index: int, rule: FaultRule, path: str, nth: int) -> bool:
        if rule.first is not None:
            return nth <= rule.first
        if rule.probability is not None:
            return hnum(self.seed, "fault", index, path, nth) / 2**64 < rule.probability
        return True

    def reset(self) -> None:
        """Forget the per-path counters (first-N triggers fire again)."""
        with self._lock:
            self._seen.clear()


def _parse_rule(text: str) -> FaultRule:
    parts = text.split(":")
    if len(parts) < 2:
        raise ValueError(f"fault rule {text!r}: expected SCOPE:KIND[@TRIGGER][:PARAM=VALUE...]")
    scope, kind_trigger, *params = parts
    kind, _, trigger = kind_trigger.partition("@")
    if scope not in SCOPES:
        raise ValueError(f"fault rule {text!r}: scope must be one of {', '.join(SCOPES)}")
    if kind not in KINDS:
        raise ValueError(f"fault rule {text!r}: kind must be one of {', '.join(KINDS)}")
    values: dict[str, object] = {"scope": scope, "kind": kind, **_parse_trigger(text, trigger)}
    for param in params:
        name, eq, value = param.partition("=")
        if not eq or kind not in _PARAMS.get(name, ()):
            raise ValueError(f"fault rule {text!r}: parameter {param!r} does not apply to {kind}")
        values[name.replace("-", "_")] = _parse_value(text, name, value)
    return FaultRule(**values)  # type: ignore[arg-type]


def _parse_trigger(text: str, trigger: str) -> dict[str, object]:
    try:
        if not trigger:
            return {}
        if trigger.startswith("p"):
            probability = float(trigger[1:])
            if 0 <= probability <= 1:
                return {"probability": probability}
        elif trigger.startswith("first") and int(trigger[5:]) >= 0:
            return {"first": int(trigger[5:])}
    except ValueError:
        pass
    raise ValueError(f"fault rule {text!r}: trigger must be pP (0 <= P <= 1) or firstN")


def _parse_value(text: str, name: str, value: str) -> object:
    if name == "retry-after":
        if value.startswith("date"):
            ahead = value[4:].lstrip("+")
            if not ahead or _is_number(ahead):
                return value
        elif value.isdigit():
            return value
        raise ValueError(f"fault rule {text!r}: retry-after is whole seconds, date or dateS")
    if not _is_number(value) or float(value) < 0:
        raise ValueError(f"fault rule {text!r}: {name} must be a non-negative number")
    if name == "fraction" and float(value) > 1:
        raise ValueError(f"fault rule {text!r}: fraction must be between 0 and 1")
    if name == "rate" and float(value) == 0:
        raise ValueError(f"fault rule {text!r}: rate must be positive")
    return float(value)


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False

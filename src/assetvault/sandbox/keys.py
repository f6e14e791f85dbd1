"""Typed keys shared by the aiohttp app and its handlers."""

from __future__ import annotations

from aiohttp import web

from .faults import Decision
from .state import SandboxState

__all__ = ["DECISION", "STATE"]

STATE = web.AppKey("sandbox_state", SandboxState)
DECISION = web.RequestKey("sandbox_fault_decision", Decision)

"""Shared by the Python client scripts of the compatibility matrix: each check prints one
JSON line {"check": ..., "ok": ..., "detail": ...} (see test_compat_matrix.py)."""

from __future__ import annotations

import json
import os
import sys
import time

URL = os.environ.get("URL", "")
# Unique per client and path: the name of the scratch table (dropped at the end).
TAG = os.environ.get("TAG", "compat")


class Differs(Exception):
    """The check ran, and the answer differs from what the client was told."""


def emit(check: str, ok: bool, detail: str = "") -> None:
    print(json.dumps({"check": check, "ok": bool(ok), "detail": str(detail)[:400]}), flush=True)


def run(check: str, fn) -> bool:
    """Run fn(); its return value is the detail. An exception fails the check."""
    t0 = time.monotonic()
    try:
        detail = fn()
        ok = True
    except Exception as e:  # noqa: BLE001 (a check reports every failure)
        detail = f"{type(e).__name__}: {e}".strip()
        ok = False
    ms = int((time.monotonic() - t0) * 1000)
    emit(check, ok, f"{detail} ({ms} ms)" if detail else f"{ms} ms")
    return ok


def must(check: str, fn) -> None:
    """Like run(), and without it nothing else can run: exit."""
    if not run(check, fn):
        sys.exit(0)


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)

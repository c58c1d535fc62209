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


def mysql_parts(url: str = URL) -> dict:
    """host, port, user, password, database of a mysql:// URL."""
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    return {
        "host": u.hostname,
        "port": u.port,
        "user": urllib.parse.unquote(u.username or ""),
        "password": urllib.parse.unquote(u.password or ""),
        "database": u.path.lstrip("/"),
    }


# 50000 rows from MariaDB without a table (its recursive CTEs stop at 1000 by default).
LARGE_SQL = (
    "WITH d AS (SELECT 0 n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 "
    "UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 "
    "UNION ALL SELECT 8 UNION ALL SELECT 9) "
    "SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n AS n, REPEAT('x', 20) "
    "FROM d a, d b, d c, d e, d f WHERE f.n < 5"
)

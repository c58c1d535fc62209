"""Fixtures for the Python end-to-end tests: the test PostgreSQL and maitred.

Environment (set by scripts/test.sh):
  MAITRED_TEST_PG_URL  postgres://app:app_secret@127.0.0.1:PORT/app; without it
                       the tests skip, except under CI=true where they fail.
  MAITRED_BIN          the maitred binary (default: target/debug/maitred).
  MAITRED_TEST_PIDDIR  if set, each started maitred records its pid there so
                       the runner can kill strays by pid.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SPAWN_TIMEOUT = 10.0


def is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.25):
            return True
    except OSError:
        return False


def swap_host_port(url: str, host: str, port: int) -> str:
    """The URL with host:port replaced, user, password and path kept."""
    parts = urllib.parse.urlsplit(url)
    userinfo = ""
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port}"))


def maitred_bin() -> pathlib.Path:
    env = os.environ.get("MAITRED_BIN", "").strip()
    path = pathlib.Path(env) if env else REPO / "target" / "debug" / "maitred"
    if not path.is_file():
        pytest.fail(f"maitred binary not found at {path}: build it first: cargo build -p maitred")
    return path


class Maitred:
    """A running maitred on a free port in front of the test PostgreSQL."""

    def __init__(self, upstream_url: str, *args: str) -> None:
        self.port = free_port()
        self.upstream_url = upstream_url
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="maitred-pytest-"))
        self.log_path = self.dir / "maitred.log"
        cmd = [
            str(maitred_bin()),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--upstream",
            upstream_url,
            *args,
        ]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.pid_file = None
        pid_dir = os.environ.get("MAITRED_TEST_PIDDIR", "").strip()
        if pid_dir:
            self.pid_file = pathlib.Path(pid_dir) / str(self.proc.pid)
            try:
                self.pid_file.write_text(f"{cmd[0]}\n")
            except OSError:
                self.pid_file = None
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"maitred exited with {code} before listening\n{cmd}\n{self.log()}")
            if port_open(self.port):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"maitred did not listen on 127.0.0.1:{self.port} within {SPAWN_TIMEOUT}s\n"
                    f"{cmd}\n{self.log()}"
                )
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return swap_host_port(self.upstream_url, "127.0.0.1", self.port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<cannot read {self.log_path}: {e}>"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
            self.pid_file = None


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("MAITRED_TEST_PG_URL", "").strip()
    if not url:
        if is_ci():
            pytest.fail("MAITRED_TEST_PG_URL is not set but CI=true: run scripts/test.sh")
        pytest.skip("skipping: no PostgreSQL (run scripts/test.sh)")
    return url


@pytest.fixture
def start_maitred(pg_url):
    """Factory: start_maitred("--pool-size", "5") -> Maitred; stopped after the test."""
    started: list[Maitred] = []

    def _start(*args: str) -> Maitred:
        m = Maitred(pg_url, *args)
        started.append(m)
        return m

    yield _start
    for m in started:
        crashed = not m.alive()
        m.stop()
        # Shown by pytest only when the test failed.
        print(f"--- maitred log ({m.log_path}) ---\n{m.log()}\n--- end ---")
        assert not crashed, f"maitred exited during the test:\n{m.log()}"

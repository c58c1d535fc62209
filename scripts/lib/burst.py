"""Load and measurement for scripts/demo.sh (run with the repo's .venv python).

  burst.py load mysql|mongo URL [--clients 200] [--seconds 10] [--pause 0.5]
      A burst of CLIENTS clients that all start at once, each with a connection of its
      own (PyMySQL; pymongo MongoClient with maxPoolSize=1, as many small app servers or
      functions would), each running one simple read after another for SECONDS. A client
      whose connection or read fails counts an error, waits PAUSE seconds and tries again
      (a MySQL client reconnects; a MongoClient reconnects by itself). Prints one line:
        clients=200 clients_with_errors=0 errors=0 ok=12345 seconds=10.0 ops_per_s=1234
      and, when there were errors, `first_error=...` on the next line.

  burst.py peak (--pg DSN | --mysql-socket PATH | --tcp-port PORT --pid PID) --out FILE -- CMD...
      Runs CMD (the load) and writes to FILE the peak number of client connections the
      server had while it ran, as the server sees them:
        --pg            PostgreSQL client backends in pg_stat_activity, sampled every 20 ms
                        over a superuser connection (DSN), not counting the sampler's own
        --mysql-socket  MariaDB's Max_used_connections (exact, reset by FLUSH STATUS
                        before CMD), over root's Unix socket, less the sampler's own
        --tcp-port      established TCP sockets on the server's port that process PID has
                        accepted (ss -tnp), sampled every 50 ms, counting those seen in two
                        samples in a row: SecantusDB accepts a connection over its cap and
                        closes it at once, so these are the admitted ones
      Exits with CMD's exit code.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.parse


def short(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    # pymongo appends its timeout settings to every network error.
    text = re.sub(r" \(configured timeouts: [^)]*\)", "", text)
    return text[:200]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = 0
        self.clients_with_errors = 0
        self.first_error = ""

    def add(self, ok: int, errors: int, first_error: str) -> None:
        with self.lock:
            self.ok += ok
            self.errors += errors
            if errors:
                self.clients_with_errors += 1
                if not self.first_error:
                    self.first_error = first_error


# --- MySQL ---------------------------------------------------------------------


def mysql_params(url: str) -> dict:
    u = urllib.parse.urlsplit(url)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": urllib.parse.unquote(u.username or ""),
        "password": urllib.parse.unquote(u.password or ""),
        "database": u.path.lstrip("/") or None,
        # Autocommit, as most applications run: each SELECT is its own transaction, so a
        # pooler in transaction mode can lend the server connection to the next client.
        "autocommit": True,
        # Plain TCP on loopback, like the other two protocols here. (PyMySQL would otherwise
        # build a TLS context for each connection, about 0.1 s of CPU under the GIL.)
        "ssl_disabled": True,
        "connect_timeout": 10,
        "read_timeout": 30,
        "write_timeout": 30,
    }


def mysql_setup(url: str) -> None:
    import pymysql

    c = pymysql.connect(**mysql_params(url))
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS demo (id INT PRIMARY KEY, v VARCHAR(32))")
        cur.execute("DELETE FROM demo")
        cur.executemany("INSERT INTO demo VALUES (%s, %s)", [(i, f"row {i}") for i in range(100)])
    c.close()


def mysql_client(url: str, n: int, start: threading.Barrier, end_at: list, pause: float, tally: Tally) -> None:
    import pymysql

    params = mysql_params(url)
    ok = errors = 0
    first = ""
    rng = random.Random(n)
    start.wait()
    end = end_at[0]
    conn = None
    while time.monotonic() < end:
        try:
            if conn is None:
                conn = pymysql.connect(**params)
            with conn.cursor() as cur:
                cur.execute("SELECT v FROM demo WHERE id = %s", (rng.randrange(100),))
                cur.fetchall()
            ok += 1
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            errors += 1
            first = first or short(e)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    tally.add(ok, errors, first)


# --- MongoDB -------------------------------------------------------------------


def mongo_client_opts() -> dict:
    return {
        # One connection per client for its operations (the driver's monitor has its own).
        "maxPoolSize": 1,
        # Fail an operation after 3 s without a usable server instead of the default 30 s,
        # so a refused client shows up as errors within the run.
        "serverSelectionTimeoutMS": 3000,
        "connectTimeoutMS": 5000,
        "socketTimeoutMS": 30000,
    }


def mongo_setup(url: str) -> None:
    import pymongo

    c = pymongo.MongoClient(url, serverSelectionTimeoutMS=10000)
    coll = c.get_default_database("app").demo
    coll.drop()
    coll.insert_many([{"_id": i, "v": f"row {i}"} for i in range(100)])
    c.close()


def mongo_client(url: str, n: int, start: threading.Barrier, end_at: list, pause: float, tally: Tally,
                 clients: list) -> None:
    import pymongo

    ok = errors = 0
    first = ""
    rng = random.Random(n)
    start.wait()
    end = end_at[0]
    client = None
    while time.monotonic() < end:
        try:
            if client is None:
                client = pymongo.MongoClient(url, **mongo_client_opts())
                clients.append(client)
                coll = client.get_default_database("app").demo
            coll.find_one({"_id": rng.randrange(100)})
            ok += 1
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            errors += 1
            first = first or short(e)
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
    tally.add(ok, errors, first)


def load(args: argparse.Namespace) -> int:
    setup, client = {"mysql": (mysql_setup, mysql_client), "mongo": (mongo_setup, mongo_client)}[args.protocol]
    try:
        setup(args.url)
    except Exception as e:  # noqa: BLE001
        print(f"setup failed: {short(e)}", file=sys.stderr)
        return 2
    threading.stack_size(512 * 1024)
    tally = Tally()
    start = threading.Barrier(args.clients + 1)
    end_at = [0.0]
    mongo_clients: list = []
    extra = (mongo_clients,) if args.protocol == "mongo" else ()
    threads = [
        threading.Thread(target=client, args=(args.url, i, start, end_at, args.pause, tally) + extra, daemon=True)
        for i in range(args.clients)
    ]
    for t in threads:
        t.start()
    end_at[0] = time.monotonic() + args.seconds
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join(timeout=max(1.0, end_at[0] + 60 - time.monotonic()))
    elapsed = max(time.monotonic() - t0, args.seconds)
    stuck = sum(1 for t in threads if t.is_alive())
    print(
        f"clients={args.clients} clients_with_errors={tally.clients_with_errors + stuck} "
        f"errors={tally.errors + stuck} ok={tally.ok} seconds={elapsed:.1f} ops_per_s={tally.ok / elapsed:.0f}"
    )
    if tally.first_error:
        print(f"first_error={tally.first_error}")
    sys.stdout.flush()
    # Close the MongoClients in parallel (each stops its monitor threads), then leave
    # without waiting for stragglers.
    closers = [threading.Thread(target=c.close, daemon=True) for c in mongo_clients]
    for t in closers:
        t.start()
    deadline = time.monotonic() + 10
    for t in closers:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    os._exit(0)


# --- peak ----------------------------------------------------------------------


class PgSampler:
    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)

    def sample(self) -> int:
        # pg_stat_activity is a snapshot per transaction: autocommit gives a fresh one each time.
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0])


class MysqlPeak:
    def __init__(self, socket_path: str) -> None:
        import pymysql

        self.conn = pymysql.connect(unix_socket=socket_path, user="root", autocommit=True)
        with self.conn.cursor() as cur:
            cur.execute("FLUSH STATUS")

    def sample(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
            (_, value) = cur.fetchone()
        return int(value) - 1  # less this connection


class TcpSampler:
    def __init__(self, port: int, pid: int) -> None:
        self.filter = f"( sport = :{port} )"
        self.owner = re.compile(rf"pid={pid},")
        self.previous: set = set()

    def sample(self) -> int:
        out = subprocess.run(
            ["ss", "-Htnp", "state", "established", self.filter],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        # The peer address of each socket the server process holds. A connection over the
        # cap is accepted and closed at once, and a sample can still catch it: count only
        # the sockets seen in this sample and the one before.
        now = {line.split()[3] for line in out.splitlines() if self.owner.search(line)}
        held = len(now & self.previous)
        self.previous = now
        return held


def peak(args: argparse.Namespace) -> int:
    if args.pg:
        sampler, interval = PgSampler(args.pg), 0.02
    elif args.mysql_socket:
        sampler, interval = MysqlPeak(args.mysql_socket), 0.5
    else:
        sampler, interval = TcpSampler(args.tcp_port, args.pid), 0.05
    best = [0]
    failed = [""]
    stop = threading.Event()

    def watch() -> None:
        while True:
            try:
                best[0] = max(best[0], sampler.sample())
            except Exception as e:  # noqa: BLE001
                failed[0] = failed[0] or short(e)
            if stop.wait(interval):
                break
        try:
            best[0] = max(best[0], sampler.sample())
        except Exception as e:  # noqa: BLE001
            failed[0] = failed[0] or short(e)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    rc = subprocess.call(cmd)
    stop.set()
    w.join(timeout=10)
    with open(args.out, "w") as f:
        f.write(f"{best[0]}\n")
    if failed[0]:
        print(f"peak: a sample failed: {failed[0]}", file=sys.stderr)
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("protocol", choices=["mysql", "mongo"])
    lo.add_argument("url")
    lo.add_argument("--clients", type=int, default=200)
    lo.add_argument("--seconds", type=float, default=10.0)
    lo.add_argument("--pause", type=float, default=0.5)
    pk = sub.add_parser("peak")
    which = pk.add_mutually_exclusive_group(required=True)
    which.add_argument("--pg")
    which.add_argument("--mysql-socket")
    which.add_argument("--tcp-port", type=int)
    pk.add_argument("--pid", type=int)
    pk.add_argument("--out", required=True)
    pk.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.what == "load":
        return load(args)
    if args.tcp_port is not None and args.pid is None:
        ap.error("--tcp-port needs --pid")
    return peak(args)


if __name__ == "__main__":
    sys.exit(main())

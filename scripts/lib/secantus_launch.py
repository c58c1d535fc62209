"""Throwaway SecantusDB (MongoDB wire protocol) for maitred's tests.

usage: secantus_launch.py <dir> <port> <max_connections> <auth: 0|1>

Provisions user app/app_secret (root role, in admin) when auth is on: first
without auth to run createUser, then again with require_auth on the same
storage. Writes <dir>/ready once serving and runs until SIGTERM/SIGINT.
"""
import os
import signal
import sys
import threading

from secantus import SecantusDBServer

APP_USER = "app"
APP_PASSWORD = "app_secret"


def main() -> None:
    dir_, port, max_conn, auth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    storage = os.path.join(dir_, "data")
    os.makedirs(storage, exist_ok=True)
    if auth:
        import pymongo

        boot = SecantusDBServer(host="127.0.0.1", port=0, storage_path=storage)
        boot.start()
        try:
            c = pymongo.MongoClient(boot.uri, directConnection=True)
            c.admin.command("createUser", APP_USER, pwd=APP_PASSWORD, roles=["root"])
            c.close()
        finally:
            boot.stop()
    server = SecantusDBServer(
        host="127.0.0.1",
        port=port,
        storage_path=storage,
        max_connections=max_conn,
        require_auth=auth,
    )
    server.start()
    with open(os.path.join(dir_, "ready"), "w") as f:
        f.write(f"{os.getpid()}\n")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()

"""pymongo through maitred in front of a throwaway SecantusDB (MongoDB wire protocol).

Environment (set by scripts/test.sh):
  MAITRED_TEST_MONGO_URL  mongodb://app:app_secret@127.0.0.1:PORT/app?authSource=admin
                          (server capped at 20 connections); without it the tests skip,
                          except under CI=true where they fail.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse

import pytest

pymongo = pytest.importorskip("pymongo")
from pymongo.errors import OperationFailure, PyMongoError  # noqa: E402

from conftest import Maitred, is_ci  # noqa: E402

SERVER_CAP = 20


@pytest.fixture(scope="session")
def mongo_url() -> str:
    url = os.environ.get("MAITRED_TEST_MONGO_URL", "").strip()
    if not url:
        if is_ci():
            pytest.fail("MAITRED_TEST_MONGO_URL is not set but CI=true: run scripts/test.sh")
        pytest.skip("skipping: no SecantusDB (run scripts/test.sh)")
    return url


@pytest.fixture
def start_maitred(mongo_url):
    started: list[Maitred] = []

    def _start(*args: str, upstream: str | None = None) -> Maitred:
        m = Maitred(upstream or mongo_url, *args)
        started.append(m)
        return m

    yield _start
    for m in started:
        m.stop()


def client(url: str, **kw) -> "pymongo.MongoClient":
    kw.setdefault("serverSelectionTimeoutMS", 10_000)
    return pymongo.MongoClient(url, **kw)


def server_connections(url: str) -> int:
    """connections.current as the server reports it (asked through `url`)."""
    with client(url) as c:
        return int(c.admin.command("serverStatus")["connections"]["current"])


def test_crud_aggregation_and_large_cursor(start_maitred):
    m = start_maitred("--pool-size", "3")
    with client(m.url) as c:
        db = c.get_database("app")
        coll = db["crud"]
        coll.drop()
        assert coll.insert_one({"_id": 1, "name": "a"}).acknowledged
        coll.insert_many([{"_id": i, "name": f"n{i}", "g": i % 3} for i in range(2, 1002)])
        assert coll.count_documents({}) == 1001
        assert coll.find_one({"_id": 1})["name"] == "a"
        assert coll.update_one({"_id": 1}, {"$set": {"name": "b"}}).modified_count == 1
        assert coll.find_one({"_id": 1})["name"] == "b"
        assert coll.delete_one({"_id": 1}).deleted_count == 1
        # Larger than one batch: several getMores.
        seen = [d["_id"] for d in coll.find({}, batch_size=100).sort("_id", 1)]
        assert seen == list(range(2, 1002))
        groups = {
            d["_id"]: d["n"]
            for d in coll.aggregate([{"$group": {"_id": "$g", "n": {"$sum": 1}}}], batchSize=1)
        }
        assert sum(groups.values()) == 1000 and set(groups) == {0, 1, 2}


def test_transactions_commit_and_abort(start_maitred):
    m = start_maitred("--pool-size", "2")
    with client(m.url) as c:
        coll = c.app["txn"]
        coll.drop()
        coll.insert_one({"_id": "seed"})
        with c.start_session() as s:
            with s.start_transaction():
                coll.insert_one({"_id": "c1"}, session=s)
                coll.insert_one({"_id": "c2"}, session=s)
        with c.start_session() as s:
            s.start_transaction()
            coll.insert_one({"_id": "a1"}, session=s)
            s.abort_transaction()
        ids = sorted(d["_id"] for d in coll.find())
        assert ids == ["c1", "c2", "seed"]


def test_bulk_and_unacknowledged_writes(start_maitred):
    m = start_maitred("--pool-size", "2")
    with client(m.url) as c:
        coll = c.app["bulk"]
        coll.drop()
        r = coll.bulk_write(
            [pymongo.InsertOne({"_id": i}) for i in range(100)]
            + [pymongo.UpdateOne({"_id": 5}, {"$set": {"x": 1}}), pymongo.DeleteOne({"_id": 6})]
        )
        assert (r.inserted_count, r.modified_count, r.deleted_count) == (100, 1, 1)
        w0 = coll.with_options(write_concern=pymongo.WriteConcern(w=0))
        for i in range(1000, 1050):
            assert not w0.insert_one({"_id": i}).acknowledged
        deadline = time.monotonic() + 5
        while coll.count_documents({"_id": {"$gte": 1000}}) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert coll.count_documents({"_id": {"$gte": 1000}}) == 50


def test_auth_required_and_wrong_password_refused(start_maitred, mongo_url):
    m = start_maitred()
    parts = urllib.parse.urlsplit(m.url)
    host = parts.netloc.rsplit("@", 1)[1]
    with client(f"mongodb://{host}/") as anon:
        # hello is answered before authentication...
        assert anon.admin.command("hello")["isWritablePrimary"] is True
        # ...anything else is refused.
        with pytest.raises(OperationFailure) as e:
            anon.app.t.find_one()
        assert e.value.code == 13
    bad = m.url.replace("app_secret", "wrong")
    with client(bad) as c, pytest.raises(OperationFailure) as e:
        c.app.t.find_one()
    assert e.value.code == 18
    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        with client(m.url, authMechanism=mech) as c:
            assert c.admin.command("ping")["ok"] == 1.0


def test_hello_is_local_and_hides_server_hosts(start_maitred, mongo_url):
    m = start_maitred("--pool-size", "1")
    with client(m.url) as c:
        h = c.admin.command("hello")
        assert "hosts" not in h and "setName" not in h and "me" not in h
        assert h["msg"] == "isdbgrid"
        assert h["logicalSessionTimeoutMinutes"] > 0
        assert h["maxWireVersion"] >= 6
        assert c.address == ("127.0.0.1", m.port)


def test_overload_reply_is_retryable_error(start_maitred):
    # One server connection, held by an open transaction: other clients wait
    # queue_timeout and get a labelled overload error.
    m = start_maitred("--pool-size", "1", "--queue-timeout", "200ms")
    with client(m.url) as holder, client(m.url, retryReads=False, retryWrites=False) as other:
        coll = holder.app["overload"]
        coll.insert_one({"x": 1})
        s = holder.start_session()
        s.start_transaction()
        coll.insert_one({"x": 2}, session=s)
        try:
            with pytest.raises(OperationFailure) as e:
                other.app["overload"].find_one({})
            assert e.value.code == 462
            assert e.value.has_error_label("SystemOverloadedError")
            assert e.value.has_error_label("RetryableError")
            assert "queue_timeout" in str(e.value)
        finally:
            s.abort_transaction()
            s.end_session()
        assert other.app["overload"].count_documents({}) >= 1


def test_client_leaving_mid_transaction_is_cleaned_up(start_maitred):
    m = start_maitred("--pool-size", "1")
    c = client(m.url)
    coll = c.app["leave"]
    coll.drop()
    s = c.start_session()
    s.start_transaction()
    coll.insert_one({"_id": "uncommitted"}, session=s)
    c.close()  # leaves with the transaction open
    with client(m.url) as c2:
        # The only server connection serves the next client, the transaction aborted.
        assert c2.app["leave"].count_documents({}) == 0
        c2.app["leave"].insert_one({"_id": "after"})
        assert c2.app["leave"].count_documents({}) == 1


def test_storm_100_clients_pool_10_server_cap_20(start_maitred):
    pool_size = 10
    m = start_maitred("--pool-size", str(pool_size), "--queue-timeout", "10s")
    # Connections the server has from others (earlier tests' maitreds still closing):
    # this fresh maitred holds exactly one server connection at this point.
    others = server_connections(m.url) - 1
    with client(m.url) as setup:
        setup.app["storm"].drop()
        setup.app["storm"].insert_one({"_id": "warm"})
    errors: list[str] = []
    acked: list[list[tuple[int, int]]] = [[] for _ in range(100)]
    stop = threading.Event()
    peak = [0]

    def worker(n: int) -> None:
        try:
            with client(m.url) as c:
                coll = c.app["storm"]
                k = 0
                while not stop.is_set():
                    coll.insert_one({"t": n, "k": k})
                    acked[n].append((n, k))
                    assert coll.find_one({"t": n, "k": k}) is not None
                    k += 1
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {n}: {type(e).__name__}: {e}")

    def watch() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], server_connections(m.url))
            except PyMongoError as e:
                errors.append(f"watcher: {e}")
            time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(100)]
    watcher = threading.Thread(target=watch)
    for t in threads:
        t.start()
    watcher.start()
    time.sleep(5)
    stop.set()
    for t in threads + [watcher]:
        t.join(timeout=60)
    assert not errors, errors[:5]
    total = sum(len(a) for a in acked)
    assert total > 100
    with client(m.url) as c:
        found = {(d["t"], d["k"]) for d in c.app["storm"].find({"t": {"$exists": True}}, {"_id": 0})}
    missing = [w for a in acked for w in a if w not in found]
    assert not missing, missing[:5]
    # maitred opens no monitoring connections of its own: only the pool.
    ours = peak[0] - others
    assert 0 < ours <= pool_size, (peak[0], others)
    print(f"storm: {total} acknowledged inserts+reads in 5s, peak server connections {ours}")


@pytest.mark.parametrize("compressor", ["zlib", "zstd", "snappy"])
def test_compressed_traffic(start_maitred, compressor):
    if compressor == "zstd":
        pytest.importorskip("backports.zstd")
    if compressor == "snappy":
        pytest.importorskip("snappy")
    m = start_maitred("--pool-size", "2")
    with client(m.url, compressors=compressor) as c:
        coll = c.app[f"compressed_{compressor}"]
        coll.drop()
        coll.insert_many([{"_id": i, "pad": "x" * 200} for i in range(300)])
        assert len(list(coll.find().batch_size(50))) == 300


def test_raw_op_compressed_reply_is_compressed(start_maitred):
    """hello negotiates zlib; a compressed ping gets a compressed reply."""
    import socket
    import struct
    import zlib

    import bson

    m = start_maitred("--pool-size", "1")
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)

    def send_msg(req_id: int, doc: dict) -> bytes:
        body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
        return struct.pack("<iiii", 16 + len(body), req_id, 0, 2013) + body

    def recv() -> bytes:
        head = b""
        while len(head) < 16:
            head += s.recv(16 - len(head))
        n = struct.unpack("<i", head[:4])[0]
        rest = b""
        while len(rest) < n - 16:
            rest += s.recv(n - 16 - len(rest))
        return head + rest

    s.sendall(send_msg(1, {"hello": 1, "compression": ["zlib"], "$db": "admin"}))
    hello = recv()
    reply = bson.decode(hello[21:])
    assert reply["compression"] == ["zlib"]
    # Authenticated commands are refused before auth, but the reply path is what we check.
    plain = send_msg(2, {"ping": 1, "$db": "admin"})
    body = plain[16:]
    packed = struct.pack("<iiB", 2013, len(body), 2) + zlib.compress(body)
    s.sendall(struct.pack("<iiii", 16 + len(packed), 2, 0, 2012) + packed)
    r = recv()
    length, _rid, response_to, opcode = struct.unpack("<iiii", r[:16])
    assert (response_to, opcode) == (2, 2012)
    original, size, cid = struct.unpack("<iiB", r[16:25])
    assert (original, cid) == (2013, 2)
    inner = zlib.decompress(r[25:])
    assert len(inner) == size
    assert bson.decode(inner[5:])["ok"] == 1.0
    s.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x7f" + b"\x01\x00\x00\x00" * 3,  # declared 2 GB: refused before allocating
        b"\x05\x00\x00\x00" + b"\x00" * 12,  # shorter than a header
        b"\x1a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00" + b"\x00\x00\x00\x00\x07junk!",
    ],
    ids=["too-large", "too-short", "bad-section"],
)
def test_malformed_message_closes_only_that_client(start_maitred, garbage):
    import socket

    m = start_maitred("--pool-size", "1")
    with client(m.url) as good:
        assert good.admin.command("ping")["ok"] == 1.0
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        s.sendall(garbage)
        reply = b""
        while chunk := s.recv(4096):  # a timeout here means maitred kept the client
            reply += chunk
        s.close()
        if garbage.startswith(b"\x00\x00\x00\x7f"):
            # Over max_message_size: 10334 BSONObjectTooLarge (docs/mongodb.md), then closed.
            import bson

            assert len(reply) > 21, f"no error reply before the close: {reply!r}"
            doc = bson.decode(reply[21:])
            assert (doc["ok"], doc["code"]) == (0.0, 10334), doc
            assert "max_message_size" in doc["errmsg"], doc
        else:
            assert reply == b"", "a malformed message gets no reply, only the close"
        assert good.admin.command("ping")["ok"] == 1.0
        assert good.app["malformed"].count_documents({}) >= 0
    assert m.alive()


def test_transaction_committed_through_another_connection_releases_the_pin(mongo_url, tmp_path):
    """A driver may commit a transaction on another of its connections: the pinned
    connection is released at once (raw OP_MSG over two sockets, pool of 2)."""
    import socket
    import struct
    import subprocess
    import uuid

    import bson
    from bson.binary import Binary, UUID_SUBTYPE
    from bson.int64 import Int64

    from conftest import free_port, maitred_bin, port_open

    port = free_port()
    cfg = tmp_path / "maitred.toml"
    cfg.write_text(
        f"""
[[pools]]
name = "mongo"
listen = "127.0.0.1:{port}"
upstream = "{mongo_url}"
client_auth = "trust"
size = 2
queue_timeout = "300ms"
"""
    )
    proc = subprocess.Popen(
        [str(maitred_bin()), "--config", str(cfg)],
        stdout=open(tmp_path / "log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.05)
        req = [0]

        def call(sock: socket.socket, doc: dict) -> dict:
            req[0] += 1
            body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
            sock.sendall(struct.pack("<iiii", 16 + len(body), req[0], 0, 2013) + body)
            head = b""
            while len(head) < 16:
                head += sock.recv(16 - len(head))
            n = struct.unpack("<i", head[:4])[0]
            rest = b""
            while len(rest) < n - 16:
                rest += sock.recv(n - 16 - len(rest))
            return bson.decode(rest[5:])

        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        a, b, c, d = conns
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        lsid = {"id": Binary(uuid.uuid4().bytes, UUID_SUBTYPE)}
        r = call(a, {"insert": "pinrel", "documents": [{"_id": first}], "lsid": lsid, "txnNumber": Int64(1),
                     "startTransaction": True, "autocommit": False, "$db": "app"})
        assert r["ok"] == 1.0, r
        # Commit through another connection; a holds one server connection until told.
        r = call(b, {"commitTransaction": 1, "lsid": lsid, "txnNumber": Int64(1), "autocommit": False,
                     "$db": "admin"})
        assert r["ok"] == 1.0, r
        time.sleep(0.1)
        # c pins one server connection with its own transaction; d must still get the other.
        lsid2 = {"id": Binary(uuid.uuid4().bytes, UUID_SUBTYPE)}
        r = call(c, {"insert": "pinrel", "documents": [{"_id": second}], "lsid": lsid2, "txnNumber": Int64(1),
                     "startTransaction": True, "autocommit": False, "$db": "app"})
        assert r["ok"] == 1.0, r
        r = call(d, {"count": "pinrel", "query": {"_id": first}, "$db": "app"})
        assert r["ok"] == 1.0 and r["n"] == 1, r
        call(c, {"abortTransaction": 1, "lsid": lsid2, "txnNumber": Int64(1), "autocommit": False,
                 "$db": "admin"})
        for s in conns:
            s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# What a server (or a failCommand fail point) says about an error reaches the driver as it
# would through a mongos: maitred forwards replies untouched, so pymongo's retryable writes,
# retryable reads and with_transaction's retries behave through maitred exactly as they do
# straight to the server (docs/mongodb.md, "What a driver sees").
FAIL_POINT_CASES = [
    ("retryable insert, NetworkTimeout", ["insert"], {"errorCode": 89}, "insert"),
    ("retryable insert, closed connection", ["insert"], {"closeConnection": True}, "insert"),
    (
        "transaction statement, WriteConflict labelled transient",
        ["insert"],
        {"errorCode": 112, "errorLabels": ["TransientTransactionError"]},
        "txn",
    ),
    ("commit, NetworkTimeout", ["commitTransaction"], {"errorCode": 89}, "txn"),
    ("commit, closed connection", ["commitTransaction"], {"closeConnection": True}, "txn"),
    ("retryable read, NetworkTimeout", ["find"], {"errorCode": 89}, "find"),
    ("retryable read, closed connection", ["find"], {"closeConnection": True}, "find"),
    ("non-retryable error", ["insert"], {"errorCode": 2}, "insert"),
]


def fail_point_outcomes(url: str) -> list[tuple[str, str]]:
    """Runs every case once through `url`: what the application saw."""
    outcomes = []
    with client(url) as c:
        coll = c.get_database("app")["fail_point_e2e"]
        coll.drop()
        for i, (name, commands, data, op) in enumerate(FAIL_POINT_CASES):
            c.admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {"failCommands": commands, **data},
                }
            )
            try:
                if op == "insert":
                    coll.insert_one({"_id": i})
                elif op == "find":
                    coll.find_one({"_id": 0})
                else:
                    with c.start_session() as s:
                        s.with_transaction(lambda s: coll.insert_one({"_id": i}, session=s))
                outcome = "ok"
            except PyMongoError as e:
                labels = sorted(getattr(e, "_error_labels", ()) or ())
                outcome = f"{type(e).__name__} {getattr(e, 'code', None)} {labels}"
            finally:
                c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
            outcomes.append((name, outcome))
        outcomes.append(("documents", str(coll.count_documents({}))))
    return outcomes


def test_fail_point_errors_and_retries_as_straight_to_the_server(start_maitred, mongo_url):
    m = start_maitred("--pool-size", "3")
    straight = fail_point_outcomes(mongo_url)
    through = fail_point_outcomes(m.url)
    assert through == straight
    # The cases are not vacuous: retries happened and the non-retryable one failed.
    assert dict(straight)["retryable insert, closed connection"] == "ok"
    assert dict(straight)["non-retryable error"].startswith("OperationFailure 2")

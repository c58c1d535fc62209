"""TLS on both legs, per-user server logins, and awaitable (streaming) hello through
maitred.

This module starts its own SecantusDB (in-process): TLS only, with the test CA's
certificate for 127.0.0.1 (MAITRED_TEST_PG_TLS_DIR: ca.pem, server.pem, server.key, made
by scripts/dev-servers.sh / scripts/test.sh), require_auth, and three users: root (maitred's
upstream login), writer (readWrite on app) and reader (read on app). The streaming hello
tests use the suite's SecantusDB (MAITRED_TEST_MONGO_URL).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

pymongo = pytest.importorskip("pymongo")
import bson  # noqa: E402
from pymongo import monitoring  # noqa: E402
from pymongo.errors import OperationFailure, PyMongoError  # noqa: E402

from conftest import REPO, free_port, is_ci, maitred_bin, port_open  # noqa: E402
from test_mongo_pymongo import mongo_url, start_maitred  # noqa: E402,F401 (fixtures)

USERS = {"root": "root_pw", "writer": "writer_pw", "reader": "reader_pw"}
NODE_MODULES = pathlib.Path(os.environ.get("VENV_DIR", REPO / ".venv")) / "node" / "node_modules"


@pytest.fixture(scope="module")
def tls_dir() -> pathlib.Path:
    d = os.environ.get("MAITRED_TEST_PG_TLS_DIR", "").strip()
    if not d or not (pathlib.Path(d) / "ca.pem").is_file():
        if is_ci():
            pytest.fail("MAITRED_TEST_PG_TLS_DIR is not set but CI=true: run scripts/test.sh")
        pytest.skip("skipping: no test CA (MAITRED_TEST_PG_TLS_DIR)")
    return pathlib.Path(d)


@pytest.fixture(scope="module")
def tls_server(tls_dir):
    """A TLS-only SecantusDB with require_auth and users of different roles: its port."""
    secantus = pytest.importorskip("secantus")
    storage = tempfile.mkdtemp(prefix="secantus-tls-")
    boot = secantus.SecantusDBServer(host="127.0.0.1", port=0, storage_path=storage)
    boot.start()
    try:
        with pymongo.MongoClient(boot.uri, directConnection=True) as c:
            c.admin.command("createUser", "root", pwd=USERS["root"], roles=["root"])
            c.admin.command("createUser", "writer", pwd=USERS["writer"],
                            roles=[{"role": "readWrite", "db": "app"}])
            c.admin.command("createUser", "reader", pwd=USERS["reader"],
                            roles=[{"role": "read", "db": "app"}])
    finally:
        boot.stop()
    port = free_port()
    server = secantus.SecantusDBServer(
        host="127.0.0.1", port=port, storage_path=storage, require_auth=True,
        max_connections=50,
        tls_cert_file=str(tls_dir / "server.pem"), tls_key_file=str(tls_dir / "server.key"),
    )
    server.start()
    yield port
    server.stop()
    shutil.rmtree(storage, ignore_errors=True)


class MaitredConfig:
    """maitred started from a TOML file (the one-line form has no TLS or user keys)."""

    def __init__(self, tmp: pathlib.Path, toml: str) -> None:
        self.tmp = tmp
        cfg = tmp / "maitred.toml"
        cfg.write_text(toml)
        self.log_path = tmp / "maitred.log"
        self.proc = subprocess.Popen(
            [str(maitred_bin()), "--config", str(cfg)],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
        )

    def wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def maitred_config(tmp_path):
    started: list[MaitredConfig] = []

    def _start(toml: str, port: int) -> MaitredConfig:
        m = MaitredConfig(tmp_path, toml)
        started.append(m)
        m.wait_listening(port)
        return m

    yield _start
    for m in started:
        m.stop()
        print(f"--- maitred log ---\n{m.log()}\n--- end ---")


def private_key_copy(tls_dir: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
    key = tmp / "server.key"
    shutil.copy(tls_dir / "server.key", key)
    key.chmod(0o600)
    return key


def upstream(port: int, tls_dir: pathlib.Path, extra: str = "") -> str:
    return (f"mongodb://root:{USERS['root']}@127.0.0.1:{port}/app?authSource=admin"
            f"&tls=true&tlsCAFile={tls_dir / 'ca.pem'}{extra}")


def test_tls_clients_and_tls_server(tls_server, tls_dir, tmp_path, maitred_config):
    port = free_port()
    key = private_key_copy(tls_dir, tmp_path)
    m = maitred_config(f"""
[[pools]]
name = "mongo-tls"
listen = "127.0.0.1:{port}"
upstream = "{upstream(tls_server, tls_dir)}"
size = 3
tls_cert = "{tls_dir / 'server.pem'}"
tls_key = "{key}"
tls_required = true
  [[pools.users]]
  name = "app"
  password = "app_pw"
""", port)
    url = f"mongodb://app:app_pw@127.0.0.1:{port}/app?authSource=admin"
    ca = str(tls_dir / "ca.pem")
    with pymongo.MongoClient(url, tls=True, tlsCAFile=ca, serverSelectionTimeoutMS=10_000) as c:
        coll = c.app["tls_e2e"]
        coll.drop()
        coll.insert_many([{"_id": i} for i in range(300)])
        assert [d["_id"] for d in coll.find({}, batch_size=50).sort("_id", 1)] == list(range(300))
        with c.start_session() as s:
            with s.start_transaction():
                coll.insert_one({"_id": "in-txn"}, session=s)
        assert coll.find_one({"_id": "in-txn"}) is not None
    # A plain client is refused with a message naming the fix.
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=2_000) as plain:
        with pytest.raises(PyMongoError) as err:
            plain.admin.command("ping")
        assert "requires TLS" in str(err.value), str(err.value)
    # A client that does not trust maitred's certificate fails its handshake.
    with pymongo.MongoClient(url, tls=True, serverSelectionTimeoutMS=2_000) as untrusting:
        with pytest.raises(PyMongoError):
            untrusting.admin.command("ping")
    assert m.proc.poll() is None


def test_server_certificate_is_verified(tls_server, tls_dir, tmp_path, maitred_config):
    """maitred checks the server's chain: a CA that did not sign it fails the connect
    (the client gets a clear error), tlsAllowInvalidCertificates accepts it."""
    port = free_port()
    # The server's own certificate is not a CA: nothing chains to it.
    m = maitred_config(f"""
[[pools]]
name = "mongo-wrong-ca"
listen = "127.0.0.1:{port}"
upstream = "mongodb://root:{USERS['root']}@127.0.0.1:{tls_server}/app?authSource=admin&tls=true&tlsCAFile={tls_dir / 'server.pem'}"
client_auth = "trust"
size = 1
server_connect_timeout = "2s"
""", port)
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=5_000,
                             retryReads=False) as c:
        with pytest.raises(PyMongoError):
            c.app["tls_e2e"].find_one()
    assert "TLS handshake" in m.log() or "certificate" in m.log(), m.log()


def test_each_user_runs_as_its_own_server_login(tls_server, tls_dir, tmp_path, maitred_config):
    port = free_port()
    m = maitred_config(f"""
[[pools]]
name = "mongo-users"
listen = "127.0.0.1:{port}"
upstream = "{upstream(tls_server, tls_dir)}"
size = 2
  [[pools.users]]
  name = "alice"
  password = "alice_pw"
  server_user = "writer"
  server_password = "{USERS['writer']}"
  [[pools.users]]
  name = "bob"
  password = "bob_pw"
  server_user = "reader"
  server_password = "{USERS['reader']}"
  [[pools.users]]
  name = "carol"
  password = "carol_pw"
""", port)

    def as_user(name: str) -> pymongo.MongoClient:
        return pymongo.MongoClient(f"mongodb://{name}:{name}_pw@127.0.0.1:{port}/app?authSource=admin",
                                   serverSelectionTimeoutMS=10_000, retryWrites=False)

    with as_user("alice") as alice, as_user("bob") as bob, as_user("carol") as carol:
        alice.app["per_user"].delete_many({})
        assert alice.app["per_user"].insert_one({"_id": "by-alice"}).acknowledged
        # bob runs as the read-only login: the server refuses his write, reads work.
        with pytest.raises(OperationFailure) as err:
            bob.app["per_user"].insert_one({"_id": "by-bob"})
        assert err.value.code == 13, err.value.details
        assert bob.app["per_user"].find_one({"_id": "by-alice"}) is not None
        # Interleaved: alice's writes never land on bob's connections, and the other way.
        for i in range(20):
            alice.app["per_user"].insert_one({"_id": i})
            with pytest.raises(OperationFailure):
                bob.app["per_user"].insert_one({"_id": f"b{i}"})
        # carol has no server login of her own: the upstream URL's (root) user.
        assert carol.app["per_user"].insert_one({"_id": "by-carol"}).acknowledged
        assert alice.app["per_user"].count_documents({}) == 22
        # The server sees each client user as its login.
        status = bob.admin.command("connectionStatus")
        users = [u["user"] for u in status["authInfo"]["authenticatedUsers"]]
        assert users == ["reader"], status
    assert m.proc.poll() is None


def test_pymongo_streams_hello_without_a_server_connection(start_maitred):  # noqa: F811
    """pymongo sees topologyVersion and switches to the streaming protocol: its heartbeats
    are `awaited`, one per maxAwaitTimeMS (= heartbeatFrequencyMS), and none of them holds a
    server connection: with a pool of 1 and three streaming clients, operations still get
    the connection at once."""
    m = start_maitred("--pool-size", "1", "--queue-timeout", "500ms")

    class Listener(monitoring.ServerHeartbeatListener):
        def __init__(self) -> None:
            self.events = []

        def started(self, event) -> None:
            pass

        def succeeded(self, event) -> None:
            self.events.append(event)

        def failed(self, event) -> None:
            self.events.append(event)

    listeners = [Listener() for _ in range(3)]
    clients = [pymongo.MongoClient(m.url, event_listeners=[lst], heartbeatFrequencyMS=500,
                                   serverSelectionTimeoutMS=10_000) for lst in listeners]
    try:
        start = time.monotonic()
        while time.monotonic() - start < 2.5:
            for c in clients:
                assert c.app["stream"].find_one({"_id": "none"}) is None
            time.sleep(0.1)
        for lst in listeners:
            awaited = [e for e in lst.events if getattr(e, "awaited", False)]
            assert all(isinstance(e, monitoring.ServerHeartbeatSucceededEvent) for e in lst.events), lst.events
            # About one streamed answer per 500 ms: waited, not polled in a loop.
            assert 2 <= len(awaited) <= 8, [(e.awaited, e.duration) for e in lst.events]
    finally:
        for c in clients:
            c.close()


def msg(request_id: int, doc: dict, flags: int = 0) -> bytes:
    body = struct.pack("<I", flags) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


def read_msg(sock: socket.socket) -> tuple[int, int, int, dict]:
    """(requestID, responseTo, flags, body) of the next OP_MSG."""
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    head = exactly(16)
    length, request_id, response_to, _op = struct.unpack("<iiii", head)
    rest = exactly(length - 16)
    flags = struct.unpack("<I", rest[:4])[0]
    return request_id, response_to, flags, bson.decode(rest[5:])


def test_exhaust_hello_streams_and_the_drain_answers_at_once(mongo_url, maitred_config):  # noqa: F811
    port = free_port()
    m = maitred_config(f"""
[[pools]]
name = "mongo-stream"
listen = "127.0.0.1:{port}"
upstream = "{mongo_url}"
client_auth = "trust"
size = 1
""", port)
    m.port = port
    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as s:
        s.sendall(msg(1, {"hello": 1, "$db": "admin"}))
        _, to, _, first = read_msg(s)
        assert to == 1 and first["ok"] == 1.0
        tv = first["topologyVersion"]
        assert set(tv) == {"processId", "counter"}
        # Exhaust: answers with moreToCome every maxAwaitTimeMS, each responding to the last.
        s.sendall(msg(2, {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": 300, "$db": "admin"},
                      flags=1 << 16))
        t0 = time.monotonic()
        previous = 2
        for _ in range(3):
            rid, to, flags, body = read_msg(s)
            assert to == previous and flags & 2, (to, previous, flags)
            assert body["ok"] == 1.0 and body["topologyVersion"] == tv
            previous = rid
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed < 3.0, elapsed
        # A topologyVersion from another process is answered at once.
        other = {"processId": bson.ObjectId(), "counter": 0}
    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(msg(3, {"hello": 1, "topologyVersion": other, "maxAwaitTimeMS": 5000, "$db": "admin"}))
        assert read_msg(s)[3]["ok"] == 1.0
        assert time.monotonic() - t0 < 1.0
    # An awaitable hello waiting for 30 s is answered as soon as the drain starts (the
    # topologyVersion's one change), normally: drivers keep using maitred to finish what
    # they started. A transaction in flight keeps the drain (and the process) going.
    import uuid

    from bson.binary import UUID_SUBTYPE, Binary
    from bson.int64 import Int64

    lsid = {"id": Binary(uuid.uuid4().bytes, UUID_SUBTYPE)}
    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as txn, \
            socket.create_connection(("127.0.0.1", m.port), timeout=10) as s:
        txn.sendall(msg(5, {"insert": "drain_hello", "documents": [{"x": 1}], "lsid": lsid,
                            "txnNumber": Int64(1), "startTransaction": True, "autocommit": False,
                            "$db": "app"}))
        assert read_msg(txn)[3]["ok"] == 1.0
        s.sendall(msg(4, {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": 30_000, "$db": "admin"}))
        time.sleep(0.3)
        t0 = time.monotonic()
        m.proc.send_signal(signal.SIGTERM)
        _, to, flags, body = read_msg(s)
        assert time.monotonic() - t0 < 3.0
        assert to == 4 and body["ok"] == 1.0, body
        assert body["topologyVersion"]["processId"] == tv["processId"]
        assert body["topologyVersion"]["counter"] == tv["counter"] + 1, body
        txn.sendall(msg(6, {"commitTransaction": 1, "lsid": lsid, "txnNumber": Int64(1),
                            "autocommit": False, "$db": "admin"}))
        assert read_msg(txn)[3]["ok"] == 1.0
    m.proc.wait(10)


NODE_SCRIPT = r"""
const { MongoClient } = require('mongodb');
(async () => {
  const client = new MongoClient(process.env.URL, { serverSelectionTimeoutMS: 10000, heartbeatFrequencyMS: 500 });
  const beats = [];
  client.on('serverHeartbeatSucceeded', e => beats.push(e.awaited));
  await client.connect();
  const coll = client.db('app').collection('node_stream');
  const until = Date.now() + 2500;
  while (Date.now() < until) {
    await coll.findOne({ _id: 'none' });
    await new Promise(r => setTimeout(r, 100));
  }
  await client.close();
  const awaited = beats.filter(a => a).length;
  console.log(JSON.stringify({ beats: beats.length, awaited }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_node_driver_streams_hello(start_maitred):  # noqa: F811
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "mongodb").is_dir():
        pytest.skip("skipping: node or the Node.js mongodb driver is missing (ensure_deps node)")
    m = start_maitred("--pool-size", "1")
    env = dict(os.environ, URL=m.url, NODE_PATH=str(NODE_MODULES))
    r = subprocess.run([node, "-e", NODE_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{m.log()[-2000:]}"
    import json

    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert 2 <= seen["awaited"] <= 8, seen

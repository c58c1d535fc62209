#!/usr/bin/env python3
"""Records real client/server conversations and splits them into fuzz seeds.

    capture.py record LISTEN_PORT UPSTREAM_HOST:PORT OUT_DIR   # a recording TCP relay
    capture.py split pg|mysql|mongo OUT_DIR CORPUS_DIR         # conversations -> seeds

`record` relays every connection accepted on 127.0.0.1:LISTEN_PORT to the upstream and
writes OUT_DIR/conn-<n>.rec: records of (1 byte direction 'C' client->server or 'S'
server->client, 4-byte big-endian length, bytes) in the order they were read, until it
gets SIGTERM. `split` cuts each conversation into whole protocol messages and writes the
seeds of each fuzz target of that protocol to CORPUS_DIR/<target>/<sha1 prefix>, skipping
duplicates and messages over MAX_SEED bytes. fuzz/capture/run.sh drives both.
"""

import hashlib
import os
import signal
import socket
import struct
import sys
import threading

MAX_SEED = 8192
MAX_STREAM_SEED = 4096
MAX_PER_KIND = 12


def record(listen_port, upstream, out_dir):
    host, port = upstream.rsplit(":", 1)
    os.makedirs(out_dir, exist_ok=True)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(listen_port)))
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    n = 0
    while True:
        client, _ = srv.accept()
        n += 1
        server = socket.create_connection((host, int(port)))
        log = open(os.path.join(out_dir, f"conn-{n:04d}.rec"), "wb")
        lock = threading.Lock()
        for src, dst, d in ((client, server, b"C"), (server, client, b"S")):
            threading.Thread(target=pump, args=(src, dst, d, log, lock), daemon=True).start()


def pump(src, dst, direction, log, lock):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            with lock:
                log.write(direction + struct.pack(">I", len(data)) + data)
                log.flush()
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def read_records(path):
    """[(direction, bytes)] with consecutive reads of one direction joined."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at + 5 <= len(data):
        d = data[at:at + 1]
        n = struct.unpack(">I", data[at + 1:at + 5])[0]
        chunk = data[at + 5:at + 5 + n]
        at += 5 + n
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1] + chunk)
        else:
            out.append((d, chunk))
    return out


class Seeds:
    def __init__(self, corpus):
        self.corpus = corpus
        self.count = {}
        self.kinds = {}

    def add(self, target, data, kind=None):
        """Adds a seed; at most MAX_PER_KIND of one kind (e.g. one message tag) per target."""
        if not data or len(data) > MAX_SEED:
            return
        if kind is not None:
            k = (target, kind)
            if self.kinds.get(k, 0) >= MAX_PER_KIND:
                return
            self.kinds[k] = self.kinds.get(k, 0) + 1
        d = os.path.join(self.corpus, target)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, hashlib.sha1(data).hexdigest()[:16])
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count[target] = self.count.get(target, 0) + 1


# PostgreSQL --------------------------------------------------------------------------

def pg_tagged(buf):
    """Whole tagged messages at the start of buf."""
    out, at = [], 0
    while at + 5 <= len(buf):
        n = struct.unpack(">I", buf[at + 1:at + 5])[0]
        if n < 4 or at + 1 + n > len(buf):
            break
        out.append(buf[at:at + 1 + n])
        at += 1 + n
    return out


def split_pg(conv, seeds):
    client = b"".join(c for d, c in conv if d == b"C")
    server = b"".join(c for d, c in conv if d == b"S")
    at = 0
    while at + 8 <= len(client):
        n, code = struct.unpack(">II", client[at:at + 8])
        seeds.add("pg_client_messages", client[at:at + n])
        at += n
        if code not in (80877103, 80877104):
            break
    msgs = pg_tagged(client[at:])
    for m in msgs:
        seeds.add("pg_client_messages", m, m[:1])
    seeds.add("pg_client_messages", client[:MAX_STREAM_SEED])
    if server[:1] in (b"N", b"S") and len(server) > 1 and server[1:2] in (b"R", b"E"):
        server = server[1:]  # the answer to an SSLRequest
    smsgs = pg_tagged(server)
    for m in smsgs:
        seeds.add("pg_server_messages", m, m[:1])
    seeds.add("pg_server_messages", server[:MAX_STREAM_SEED])
    # SCRAM: the client's SASLInitialResponse data and SASLResponse; the server's
    # AuthenticationSASLContinue (11) and AuthenticationSASLFinal (12) data.
    ps = [m for m in msgs if m[:1] == b"p"]
    if len(ps) >= 2 and b"SCRAM" in ps[0]:
        body = ps[0][5:]
        nul = body.index(b"\0")
        first = body[nul + 1 + 4:]
        seeds.add("pg_scram", b"\x00" + first + b"\x00" + ps[1][5:])
    auth = {struct.unpack(">I", m[5:9])[0]: m[9:] for m in smsgs if m[:1] == b"R" and len(m) >= 9}
    if 11 in auth:
        seeds.add("pg_scram", b"\x01" + auth[11] + b"\x00" + auth.get(12, b""))


# MySQL -------------------------------------------------------------------------------

def my_packets(buf):
    """(seq, whole packet) for the whole packets at the start of buf."""
    out, at = [], 0
    while at + 4 <= len(buf):
        n = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16
        if at + 4 + n > len(buf):
            break
        out.append((buf[at + 3], buf[at:at + 4 + n]))
        at += 4 + n
    return out


# The scanner's response shape per command byte, as the fuzz target's first byte picks it:
# 0 Results, 1 Status, 2 Fetch, 3 Prepare, 4 FieldList, 5 AnyOne.
MY_SHAPE = {0x03: 0, 0x17: 0, 0x02: 1, 0x1a: 1, 0x1f: 1, 0x1b: 1, 0x0e: 1, 0x1c: 2, 0x16: 3,
            0x04: 4, 0x09: 5}


def split_mysql(conv, seeds):
    client = b"".join(c for d, c in conv if d == b"C")
    seeds.add("mysql_client_packets", client[:MAX_STREAM_SEED])
    logged_in = False
    login_client, login_server = [], []
    for i, (d, chunk) in enumerate(conv):
        pk = my_packets(chunk)
        if d == b"C":
            for seq, p in pk:
                seeds.add("mysql_client_packets", p, p[4:5])
            if not logged_in:
                login_client += [p for _, p in pk]
            elif pk and pk[0][0] == 0 and len(pk[0][1]) > 4:
                shape = MY_SHAPE.get(pk[0][1][4])
                reply = conv[i + 1][1] if i + 1 < len(conv) and conv[i + 1][0] == b"S" else b""
                if shape is not None and reply:
                    seeds.add("mysql_server_packets", bytes([shape]) + reply[:MAX_STREAM_SEED], shape)
        else:
            if not logged_in:
                login_server += [p for _, p in pk]
                if any(p[4:5] == b"\x00" for _, p in pk[-1:]) and len(login_server) > 1:
                    logged_in = True
            for _, p in pk:
                if p[4:5] in (b"\x00", b"\xff", b"\xfe"):
                    seeds.add("mysql_server_packets", b"\x01" + p, p[4:5])
    if login_server:
        seeds.add("mysql_server_packets", b"\x00" + login_server[0])
        seeds.add("mysql_auth", b"\x01" + b"".join(login_server))
    if login_client:
        seeds.add("mysql_auth", b"\x00" + b"".join(login_client))


# MongoDB -----------------------------------------------------------------------------

def mongo_messages(buf):
    out, at = [], 0
    while at + 16 <= len(buf):
        n = struct.unpack("<i", buf[at:at + 4])[0]
        if n < 16 or at + n > len(buf):
            break
        out.append(buf[at:at + n])
        at += n
    return out


def mongo_body(msg):
    """The command document of an OP_MSG (kind-0 section) or OP_QUERY, decoded."""
    import bson  # from pymongo
    op = struct.unpack("<i", msg[12:16])[0]
    try:
        if op == 2013 and msg[20] == 0:
            n = struct.unpack("<i", msg[21:25])[0]
            return bson.decode(msg[21:21 + n])
        if op == 2004:
            at = 20 + msg[20:].index(b"\0") + 1 + 8
            n = struct.unpack("<i", msg[at:at + 4])[0]
            return bson.decode(msg[at:at + n])
        if op == 1:
            return bson.decode(msg[36:])
    except Exception:
        return None
    return None


def split_mongo(conv, seeds):
    import zlib
    client = b"".join(c for d, c in conv if d == b"C")
    server = b"".join(c for d, c in conv if d == b"S")
    cm, sm = mongo_messages(client), mongo_messages(server)
    for m in cm + sm:
        body = mongo_body(m) or {}
        seeds.add("mongo_messages", m, (m[12:16], next(iter(body), "")))
        # OP_COMPRESSED seeds made from real messages with zlib (stdlib), in case the
        # server did not negotiate compression.
        op = struct.unpack("<i", m[12:16])[0]
        if op in (2013, 1) and len(m) < 2048:
            z = zlib.compress(m[16:])
            body = struct.pack("<iiB", op, len(m) - 16, 2) + z
            seeds.add("mongo_messages", struct.pack("<iiii", 16 + len(body), *struct.unpack("<ii", m[4:12]), 2012) + body)
    # SCRAM: saslStart / saslContinue payloads and the server's answers.
    client_msgs = [mongo_body(m) for m in cm]
    server_msgs = [mongo_body(m) for m in sm]
    # pymongo starts the exchange inside hello (speculativeAuthenticate).
    spec = [d["speculativeAuthenticate"] for d in client_msgs + server_msgs
            if d and isinstance(d.get("speculativeAuthenticate"), dict)]
    client_msgs = [d for d in spec if "saslStart" in d] + client_msgs
    replies_spec = [d for d in spec if "conversationId" in d]
    start = next((d for d in client_msgs if d and "saslStart" in d), None)
    cont = next((d for d in client_msgs if d and "saslContinue" in d), None)
    replies = replies_spec + [d for d in server_msgs if d and "conversationId" in d and "payload" in d]
    if start and cont:
        mech = 2 if start.get("mechanism") == "SCRAM-SHA-1" else 0
        seeds.add("mongo_scram", bytes([mech]) + bytes(start["payload"]) + b"\0" + bytes(cont["payload"]))
        if len(replies) >= 2:
            seeds.add("mongo_scram", bytes([mech | 1]) + bytes(replies[0]["payload"]) + b"\0" + bytes(replies[1]["payload"]))


def split(protocol, out_dir, corpus):
    seeds = Seeds(corpus)
    fn = {"pg": split_pg, "mysql": split_mysql, "mongo": split_mongo}[protocol]
    for name in sorted(os.listdir(out_dir)):
        if name.endswith(".rec"):
            fn(read_records(os.path.join(out_dir, name)), seeds)
    for t, n in sorted(seeds.count.items()):
        print(f"{t}: {n} new seeds")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        record(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "split":
        split(*sys.argv[2:])
    else:
        sys.exit(__doc__)

"""pymongo: the compatibility matrix's MongoDB checks."""

import threading

import pymongo
from pymongo.errors import DuplicateKeyError

from _checks import TAG, URL, expect, must, run

# Not 50000: SecantusDB (a Python server) stores ~4000 documents a second.
N_LARGE = 10000
client = None
coll = None


def connect():
    global client, coll
    client = pymongo.MongoClient(URL, serverSelectionTimeoutMS=10000, maxPoolSize=3)
    expect(client.admin.command("ping")["ok"] == 1, "ping")
    coll = client.get_database("app")[f"compat_{TAG}"]
    coll.drop()
    return f"server {client.server_info().get('version')}"


def pool():
    out = []

    def work(k):
        coll.insert_one({"_id": f"p{k}", "k": k})
        out.append(coll.find_one({"_id": f"p{k}"})["k"])

    ts = [threading.Thread(target=work, args=(k,)) for k in range(9)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    expect(sorted(out) == list(range(9)), f"results {out}")
    return "9 threads over maxPoolSize=3"


def crud():
    coll.insert_one({"_id": 1, "name": "a"})
    expect(coll.update_one({"_id": 1}, {"$set": {"name": "b"}}).modified_count == 1, "update")
    expect(coll.find_one({"_id": 1})["name"] == "b", "find")
    groups = list(coll.aggregate([{"$match": {"k": {"$exists": True}}}, {"$group": {"_id": None, "n": {"$sum": 1}}}]))
    expect(groups and groups[0]["n"] == 9, f"aggregate {groups}")
    expect(coll.delete_one({"_id": 1}).deleted_count == 1, "delete")
    return "insert, update, find, aggregate, delete"


def transaction():
    with client.start_session() as s:
        s.start_transaction()
        coll.insert_one({"_id": "tx1"}, session=s)
        try:
            coll.insert_one({"_id": "tx1"}, session=s)
            raise AssertionError("duplicate key did not fail")
        except DuplicateKeyError:
            pass
        if s.in_transaction:
            s.abort_transaction()
    expect(coll.find_one({"_id": "tx1"}) is None, "aborted insert visible")
    expect(client.admin.command("ping")["ok"] == 1, "usable")
    return "aborted after a duplicate key, usable"


def large():
    coll.insert_many([{"_id": 100000 + i, "x": "x" * 20} for i in range(N_LARGE)])
    n = sum(1 for _ in coll.find({"_id": {"$gte": 100000}}, batch_size=1000))
    expect(n == N_LARGE, f"{n} documents")
    return f"{N_LARGE} documents (insert_many, then a cursor with getMores)"


must("connect", connect)
run("pool", pool)
run("crud", crud)
run("transaction", transaction)
run("large", large)
coll.drop()
client.close()

"""The Node.js mongodb driver through maitred (installed into .venv/node by
scripts/lib/deps.sh, component `node`; the test skips without node or the driver).

Environment: MAITRED_TEST_MONGO_URL as for test_mongo_pymongo.py.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import REPO
from test_mongo_pymongo import mongo_url, start_maitred  # noqa: F401 (fixtures)

NODE_MODULES = pathlib.Path(os.environ.get("VENV_DIR", REPO / ".venv")) / "node" / "node_modules"

SCRIPT = r"""
const { MongoClient } = require('mongodb');
(async () => {
  const client = new MongoClient(process.env.URL, { serverSelectionTimeoutMS: 10000 });
  await client.connect();
  const coll = client.db('app').collection('node_e2e');
  await coll.deleteMany({});
  await coll.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: i, g: i % 5 })));
  const all = await coll.find({}).batchSize(40).toArray();
  if (all.length !== 250) throw new Error('cursor returned ' + all.length);
  const groups = await coll.aggregate([{ $group: { _id: '$g', n: { $sum: 1 } } }]).toArray();
  if (groups.length !== 5 || groups.some(g => g.n !== 50)) throw new Error('aggregate ' + JSON.stringify(groups));
  const session = client.startSession();
  await session.withTransaction(async () => {
    await coll.insertOne({ _id: 'committed' }, { session });
  });
  session.startTransaction();
  await coll.insertOne({ _id: 'aborted' }, { session });
  await session.abortTransaction();
  await session.endSession();
  if (!(await coll.findOne({ _id: 'committed' }))) throw new Error('commit lost');
  if (await coll.findOne({ _id: 'aborted' })) throw new Error('abort ignored');
  const hello = await client.db('admin').command({ hello: 1 });
  if (hello.hosts || hello.setName) throw new Error('server hosts leaked: ' + JSON.stringify(hello));
  await client.close();
  console.log('node ok');
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_node_driver_through_maitred(start_maitred):  # noqa: F811
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "mongodb").is_dir():
        pytest.skip("skipping: node or the Node.js mongodb driver is missing (ensure_deps node)")
    m = start_maitred("--pool-size", "2")
    env = dict(os.environ, URL=m.url, NODE_PATH=str(NODE_MODULES))
    r = subprocess.run([node, "-e", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{m.log()[-2000:]}"
    assert "node ok" in r.stdout

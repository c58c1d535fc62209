"""node-postgres (npm `pg`) through maitred in transaction mode: parameterized queries,
named prepared statements from several clients with colliding names, a transaction, and
an error that leaves the client usable. Installed into .venv/node by scripts/lib/deps.sh
(component `node`); the test skips without node or the driver (fails under CI)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import REPO, is_ci

NODE_MODULES = pathlib.Path(os.environ.get("VENV_DIR", REPO / ".venv")) / "node" / "node_modules"

SCRIPT = r"""
const { Client } = require('pg');
async function one(k) {
  const c = new Client({ connectionString: process.env.URL });
  await c.connect();
  for (let i = 0; i < 20; i++) {
    const r = await c.query('SELECT $1::int + $2::int AS v', [i, k]);
    if (r.rows[0].v !== i + k) throw new Error('sum ' + JSON.stringify(r.rows));
    // Every client names its statement "sum": names must not collide across clients.
    const p = await c.query({ name: 'sum', text: 'SELECT $1::int * 10 + $2::int AS v', values: [i, k] });
    if (p.rows[0].v !== i * 10 + k) throw new Error('named ' + JSON.stringify(p.rows));
  }
  await c.query('BEGIN');
  await c.query('SELECT pg_sleep(0.01)');
  const t = await c.query({ name: 'in_tx', text: 'SELECT $1::text AS s', values: ['k' + k] });
  if (t.rows[0].s !== 'k' + k) throw new Error('tx ' + JSON.stringify(t.rows));
  await c.query('COMMIT');
  let failed = false;
  try { await c.query('SELECT 1/0'); } catch (e) { failed = e.code === '22012'; }
  if (!failed) throw new Error('division by zero did not fail');
  const after = await c.query('SELECT 7 AS v');
  if (after.rows[0].v !== 7) throw new Error('after error');
  await c.end();
}
Promise.all(Array.from({ length: 10 }, (_, k) => one(k)))
  .then(() => console.log('node pg ok'))
  .catch(e => { console.error(e); process.exit(1); });
"""


def test_node_postgres_10_clients_pool_2(start_maitred):
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "pg").is_dir():
        if is_ci():
            pytest.fail("node or the Node.js pg driver is missing under CI (ensure_deps node)")
        pytest.skip("skipping: node or the Node.js pg driver is missing (ensure_deps node)")
    m = start_maitred("--pool-size", "2")
    env = dict(os.environ, URL=m.url, NODE_PATH=str(NODE_MODULES))
    r = subprocess.run([node, "-e", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{m.log()[-2000:]}"
    assert "node pg ok" in r.stdout

// Shared by the Node.js client scripts of the compatibility matrix: each check prints one
// JSON line {"check": ..., "ok": ..., "detail": ...} (see test_compat_matrix.py).
'use strict';

const URL = process.env.URL || '';
const TAG = process.env.TAG || 'compat';

async function run(check, fn) {
  const t0 = Date.now();
  let ok = true;
  let detail;
  try {
    detail = await Promise.race([
      fn(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('check timed out after 30s')), 30000).unref()),
    ]);
  } catch (e) {
    ok = false;
    detail = `${e && e.name}: ${e && e.message}`;
  }
  detail = `${detail || ''} (${Date.now() - t0} ms)`.trim();
  console.log(JSON.stringify({ check, ok, detail: detail.slice(0, 400) }));
  return ok;
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

class Differs extends Error {
  constructor(m) { super(m); this.name = 'Differs'; }
}

module.exports = { URL, TAG, run, expect, Differs };

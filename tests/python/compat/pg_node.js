// node-postgres (npm pg, with pg-copy-streams): the compatibility matrix's PostgreSQL checks.
'use strict';
const { Client, Pool } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('stream/promises');
const { Readable, Writable } = require('stream');
const { URL, TAG, run, expect, Differs } = require('./_checks');

const T = `compat_${TAG}`;
const sleep = ms => new Promise(r => setTimeout(r, ms));

(async () => {
  const conn = new Client({ connectionString: URL, connectionTimeoutMillis: 10000 });
  const ok = await run('connect', async () => {
    await conn.connect();
    expect((await conn.query('SELECT 1 AS v')).rows[0].v === 1, 'SELECT 1');
    await conn.query(`DROP TABLE IF EXISTS ${T}`);
    await conn.query(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    return `server_version ${conn.connectionParameters && (await conn.query('SHOW server_version')).rows[0].server_version}`;
  });
  if (!ok) process.exit(0);

  await run('pool', async () => {
    const pool = new Pool({ connectionString: URL, max: 3, connectionTimeoutMillis: 10000 });
    const out = await Promise.all(Array.from({ length: 9 }, async (_, k) => {
      await pool.query('SELECT pg_sleep(0.1)');
      return (await pool.query('SELECT $1::int * 2 AS v', [k])).rows[0].v;
    }));
    await pool.end();
    expect(JSON.stringify(out) === JSON.stringify(out.map((_, k) => k * 2)), `pool results ${out}`);
    return '9 tasks over a Pool of 3';
  });

  await run('prepared', async () => {
    for (let i = 0; i < 8; i++) {
      const r = await conn.query({ name: 'sum', text: 'SELECT $1::int + $2::int AS v', values: [i, 1] });
      expect(r.rows[0].v === i + 1, 'named statement');
    }
    return '8 executions of a named prepared statement';
  });

  await run('simple', async () => {
    const r = await conn.query("SELECT 1 AS a; SELECT 'two' AS b");
    expect(Array.isArray(r) && r[1].rows[0].b === 'two', 'two results');
    return 'two statements in one Query';
  });

  await run('transaction', async () => {
    await conn.query('BEGIN');
    await conn.query(`INSERT INTO ${T} VALUES (1, 'a')`);
    let code;
    try { await conn.query('SELECT 1/0'); } catch (e) { code = e.code; }
    expect(code === '22012', `1/0 gave ${code}`);
    await conn.query('ROLLBACK');
    const n = (await conn.query(`SELECT count(*)::int AS n FROM ${T}`)).rows[0].n;
    expect(n === 0, `${n} rows after rollback`);
    return 'rolled back, usable';
  });

  await run('notify', async () => {
    const listener = new Client({ connectionString: URL });
    await listener.connect();
    const seen = [];
    let wake = () => {};
    listener.on('notification', m => { seen.push(m); wake(); });
    const next = async () => {
      if (!seen.length) await Promise.race([new Promise(r => { wake = r; }), sleep(5000)]);
      return seen.shift();
    };
    await listener.query(`LISTEN ch_${TAG}`);
    await conn.query(`NOTIFY ch_${TAG}, 'hello'`);
    const first = await next();
    expect(first && first.payload === 'hello', `got ${first && first.payload}`);
    // Its own notification carries the pid it was told (how applications skip their own).
    await listener.query(`NOTIFY ch_${TAG}, 'own'`);
    const own = await next();
    const told = listener.processID;
    await listener.end();
    expect(own && own.payload === 'own' && own.processId === told,
      `own notification ${own && own.payload} from ${own && own.processId}, told pid ${told}`);
    return 'one notification; its own with its pid';
  });

  await run('cancel', async () => {
    const c = new Client({ connectionString: URL });
    await c.connect();
    const t0 = Date.now();
    const q = c.query('SELECT pg_sleep(10)');
    await sleep(500);
    // The query object the driver runs (query() without a callback returns a promise).
    new Client({ connectionString: URL }).cancel(c, c.activeQuery);
    let code;
    try { await q; } catch (e) { code = e.code; }
    const took = (Date.now() - t0) / 1000;
    expect(code === '57014', `pg_sleep ended with ${code} after ${took}s`);
    expect((await c.query('SELECT 3 AS v')).rows[0].v === 3, 'usable after cancel');
    await c.end();
    return `cancelled after ${took.toFixed(1)}s`;
  });

  await run('pid', async () => {
    const told = conn.processID;
    const server = (await conn.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    if (told !== server) throw new Differs(`client was told ${told}, pg_backend_pid() = ${server}`);
    return 'equal';
  });

  await run('large', async () => {
    const r = await conn.query("SELECT g, repeat('x', 20) AS x FROM generate_series(1, 50000) g");
    expect(r.rows.length === 50000, `${r.rows.length} rows`);
    return '50000 rows';
  });

  await run('copy', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `${i + 10}\tv${i + 10}\n`);
    await pipeline(Readable.from(lines), conn.query(copyFrom(`COPY ${T} (id, v) FROM STDIN`)));
    let n = 0;
    await pipeline(conn.query(copyTo(`COPY (SELECT * FROM ${T} WHERE id >= 10) TO STDOUT`)),
      new Writable({ write(chunk, _e, cb) { n += chunk.toString().split('\n').length - 1; cb(); } }));
    expect(n === 1000, `copied out ${n}`);
    return '1000 rows in and out';
  });

  await conn.query(`DROP TABLE IF EXISTS ${T}`);
  await conn.end();
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });

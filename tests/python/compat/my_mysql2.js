// mysql2 (npm): the compatibility matrix's MySQL checks (execute(): server-side prepared
// statements; LOAD DATA LOCAL through infileStreamFactory).
'use strict';
const mysql = require('mysql2/promise');
const { Readable } = require('stream');
const { URL: RAW, TAG, run, expect, Differs } = require('./_checks');

const T = `compat_${TAG}`;
const u = new URL(RAW);
const OPTS = {
  host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username),
  password: decodeURIComponent(u.password), database: u.pathname.slice(1), connectTimeout: 10000,
};
const LARGE_SQL = "WITH d AS (SELECT 0 n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 " +
  'UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 ' +
  'UNION ALL SELECT 9) SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n AS n, ' +
  "REPEAT('x', 20) AS x FROM d a, d b, d c, d e, d f WHERE f.n < 5";

(async () => {
  let conn;
  const ok = await run('connect', async () => {
    conn = await mysql.createConnection({
      ...OPTS,
      infileStreamFactory: () => Readable.from([Buffer.from(Array.from({ length: 1000 }, (_, i) => `${i + 10}\tv${i + 10}\n`).join(''))]),
    });
    const [r] = await conn.query('SELECT 1 AS v');
    expect(r[0].v === 1, 'SELECT 1');
    await conn.query(`DROP TABLE IF EXISTS ${T}`);
    await conn.query(`CREATE TABLE ${T} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB`);
    return `server ${(await conn.query('SELECT VERSION() AS v'))[0][0].v}`;
  });
  if (!ok) process.exit(0);

  await run('pool', async () => {
    const pool = mysql.createPool({ ...OPTS, connectionLimit: 3 });
    const out = await Promise.all(Array.from({ length: 9 }, async (_, k) => {
      await pool.query('DO SLEEP(0.1)');
      const [r] = await pool.query('SELECT ? * 2 AS v', [k]);
      return Number(r[0].v);
    }));
    await pool.end();
    expect(JSON.stringify(out) === JSON.stringify(out.map((_, k) => k * 2)), `results ${out}`);
    return '9 tasks over a pool of 3';
  });

  await run('prepared', async () => {
    for (let i = 0; i < 8; i++) {
      const [r] = await conn.execute('SELECT ? + ? AS v', [i, 1]);
      expect(Number(r[0].v) === i + 1, `prepared ${JSON.stringify(r)}`);
    }
    return '8 executions of a server-side prepared statement';
  });

  await run('simple', async () => {
    const [r] = await conn.query("SELECT 'plain' AS v");
    expect(r[0].v === 'plain', 'plain');
    return 'COM_QUERY';
  });

  await run('transaction', async () => {
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${T} VALUES (1, 'a')`);
    let errno;
    try { await conn.query(`INSERT INTO ${T} VALUES (1, 'dup')`); } catch (e) { errno = e.errno; }
    expect(errno === 1062, `duplicate key gave ${errno}`);
    await conn.rollback();
    const [r] = await conn.query(`SELECT COUNT(*) AS n FROM ${T}`);
    expect(Number(r[0].n) === 0, `${r[0].n} rows after rollback`);
    return 'rolled back, usable';
  });

  await run('cancel', async () => {
    const c = await mysql.createConnection(OPTS);
    const killer = await mysql.createConnection(OPTS);
    const t0 = Date.now();
    const q = c.query('SELECT SLEEP(10) AS s');
    await new Promise(r => setTimeout(r, 500));
    await killer.query(`KILL QUERY ${c.threadId}`);
    try {
      const [r] = await q;
      expect(Number(r[0].s) === 1, `SLEEP returned ${JSON.stringify(r)}`);
    } catch (e) {
      expect(e.errno === 1317, `SLEEP ended with ${e.errno} ${e.message}`);
    }
    const took = (Date.now() - t0) / 1000;
    expect(took < 5, `interrupted after ${took}s`);
    const [r] = await c.query('SELECT 3 AS v');
    expect(r[0].v === 3, 'usable after KILL QUERY');
    await c.end();
    await killer.end();
    return `KILL QUERY after ${took.toFixed(1)}s`;
  });

  await run('thread_id', async () => {
    const told = conn.threadId;
    const [r] = await conn.query('SELECT CONNECTION_ID() AS id');
    if (told !== Number(r[0].id)) throw new Differs(`handshake said ${told}, CONNECTION_ID() = ${r[0].id}`);
    return 'equal';
  });

  await run('large', async () => {
    const [r] = await conn.query(LARGE_SQL);
    expect(r.length === 50000, `${r.length} rows`);
    return '50000 rows';
  });

  await run('load_data', async () => {
    await conn.query({ sql: `LOAD DATA LOCAL INFILE 'rows.tsv' INTO TABLE ${T} (id, v)` });
    const [r] = await conn.query(`SELECT COUNT(*) AS n FROM ${T} WHERE id >= 10`);
    expect(Number(r[0].n) === 1000, `${r[0].n} rows loaded`);
    return '1000 rows';
  });

  await conn.query(`DROP TABLE IF EXISTS ${T}`);
  await conn.end();
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });

// The Node.js mongodb driver: the compatibility matrix's MongoDB checks.
'use strict';
const { MongoClient } = require('mongodb');
const { URL, TAG, run, expect } = require('./_checks');

// Not 50000: SecantusDB (a Python server) stores ~4000 documents a second.
const N_LARGE = 10000;

(async () => {
  const client = new MongoClient(URL, { serverSelectionTimeoutMS: 10000, maxPoolSize: 3 });
  let coll;
  const ok = await run('connect', async () => {
    await client.connect();
    expect((await client.db('admin').command({ ping: 1 })).ok === 1, 'ping');
    coll = client.db('app').collection(`compat_${TAG}`);
    await coll.deleteMany({});
    return `server ${(await client.db('admin').command({ buildInfo: 1 })).version}`;
  });
  if (!ok) process.exit(0);

  await run('pool', async () => {
    const out = await Promise.all(Array.from({ length: 9 }, async (_, k) => {
      await coll.insertOne({ _id: `p${k}`, k });
      return (await coll.findOne({ _id: `p${k}` })).k;
    }));
    expect(JSON.stringify(out) === JSON.stringify([0, 1, 2, 3, 4, 5, 6, 7, 8]), `results ${out}`);
    return '9 operations at once over maxPoolSize=3';
  });

  await run('crud', async () => {
    await coll.insertOne({ _id: 1, name: 'a' });
    expect((await coll.updateOne({ _id: 1 }, { $set: { name: 'b' } })).modifiedCount === 1, 'update');
    expect((await coll.findOne({ _id: 1 })).name === 'b', 'find');
    const g = await coll.aggregate([{ $match: { k: { $exists: true } } }, { $group: { _id: null, n: { $sum: 1 } } }]).toArray();
    expect(g.length === 1 && g[0].n === 9, `aggregate ${JSON.stringify(g)}`);
    expect((await coll.deleteOne({ _id: 1 })).deletedCount === 1, 'delete');
    return 'insert, update, find, aggregate, delete';
  });

  await run('transaction', async () => {
    const s = client.startSession();
    s.startTransaction();
    await coll.insertOne({ _id: 'tx1' }, { session: s });
    let code;
    try { await coll.insertOne({ _id: 'tx1' }, { session: s }); } catch (e) { code = e.code; }
    expect(code === 11000, `duplicate key gave ${code}`);
    if (s.inTransaction()) await s.abortTransaction();
    await s.endSession();
    expect((await coll.findOne({ _id: 'tx1' })) === null, 'aborted insert visible');
    return 'aborted after a duplicate key, usable';
  });

  await run('large', async () => {
    await coll.insertMany(Array.from({ length: N_LARGE }, (_, i) => ({ _id: 100000 + i, x: 'x'.repeat(20) })));
    let n = 0;
    for await (const _d of coll.find({ _id: { $gte: 100000 } }).batchSize(1000)) n++;
    expect(n === N_LARGE, `${n} documents`);
    return `${N_LARGE} documents (insertMany, then a cursor with getMores)`;
  });

  await coll.drop();
  await client.close();
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });

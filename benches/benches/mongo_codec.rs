//! MongoDB codec micro-benchmarks: OP_MSG framing, decode (the body and the fields maitred
//! routes on) and encode, for a typical command and replies of 1 and 100 documents.
//!
//! `cargo bench -p maitred-bench --bench mongo_codec`

use bson::{doc, Document};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use maitred_mongo::codec::header::{decode_frame, Header};
use maitred_mongo::codec::op_msg;

const MAX: usize = 48_000_000;

fn to_bytes(d: &Document) -> Vec<u8> {
    let mut v = Vec::new();
    d.to_writer(&mut v).expect("bson");
    v
}

/// A find by _id as the Rust driver sends it in a session.
fn find_command() -> Document {
    doc! {
        "find": "maitred_bench",
        "filter": { "_id": 42 },
        "limit": 1_i64,
        "singleBatch": true,
        "lsid": { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7u8; 16] } },
        "$db": "app",
    }
}

fn find_reply(docs: usize) -> Document {
    let batch: Vec<Document> = (0..docs as i32)
        .map(|i| doc! { "_id": i, "v": "a87ff679a2f3e71d9181a67b7542122c", "n": 0_i64 })
        .collect();
    doc! {
        "cursor": { "firstBatch": batch, "id": 0_i64, "ns": "app.maitred_bench" },
        "ok": 1.0,
    }
}

fn message(body: &Document) -> BytesMut {
    let mut out = BytesMut::new();
    op_msg::encode(&mut out, 17, 0, 0, &to_bytes(body));
    out
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("mongo/decode");
    let cases = [
        ("find command", message(&find_command())),
        ("reply with 1 document", message(&find_reply(1))),
        ("reply with 100 documents", message(&find_reply(100))),
    ];
    for (name, msg) in &cases {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(format!("{name}: frame + OP_MSG parse"), |b| {
            b.iter_batched(
                || msg.clone(),
                |mut buf| {
                    let (h, whole) = decode_frame(&mut buf, MAX).expect("valid").expect("whole");
                    let m = op_msg::parse(&whole).expect("OP_MSG");
                    let db = m.body.get_str("$db").ok().map(str::len);
                    black_box((h.request_id, m.command_name().map(str::len), db))
                },
                BatchSize::SmallInput,
            )
        });
    }
    let header_only = &cases[0].1;
    g.bench_function("header peek", |b| {
        b.iter(|| black_box(Header::peek(black_box(header_only), MAX).expect("valid")))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("mongo/encode");
    for (name, body) in [
        ("find command", to_bytes(&find_command())),
        ("reply with 100 documents", to_bytes(&find_reply(100))),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        let mut out = BytesMut::with_capacity(body.len() + 64);
        g.bench_function(format!("{name}: OP_MSG encode"), |b| {
            b.iter(|| {
                out.clear();
                op_msg::encode(&mut out, 18, 17, 0, black_box(&body));
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);

//! PostgreSQL codec micro-benchmarks: what the relay does to typical frontend and backend
//! messages (framing, the SQL effects scan of a Query, renaming a Parse/Bind to the pool's
//! statement name, classifying the server's replies) and the messages maitred writes.
//!
//! `cargo bench -p maitred-bench --bench pg_codec`

use bytes::{BufMut, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use maitred_pg::codec::server_msgs::{self, ErrorFields, Severity};
use maitred_pg::codec::{extended, frame};
use maitred_pg::replies::{Replies, Request};
use maitred_pg::sql_effects;
use postgres_protocol::message::frontend;

const SELECT: &str = "SELECT v FROM maitred_bench WHERE id = $1";

/// Parse/Bind/Describe/Execute/Sync of one point select, as tokio-postgres sends it.
fn extended_batch() -> BytesMut {
    let mut b = BytesMut::new();
    frontend::parse("s1", SELECT, [23u32], &mut b).expect("parse");
    frontend::bind(
        "",
        "s1",
        [1i16],
        [42i32],
        |v, buf| {
            buf.put_i32(v);
            Ok(postgres_protocol::IsNull::No)
        },
        [1i16],
        &mut b,
    )
    .map_err(|_| "bind")
    .expect("bind");
    frontend::describe(b'P', "", &mut b).expect("describe");
    frontend::execute("", 0, &mut b).expect("execute");
    frontend::sync(&mut b);
    b
}

fn query_message(sql: &str) -> BytesMut {
    let mut b = BytesMut::new();
    frontend::query(sql, &mut b).expect("query");
    b
}

fn tagged(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(body);
}

/// RowDescription of one text column `v`.
fn row_description(out: &mut BytesMut) {
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_slice(b"v\0");
    body.put_i32(16384); // table oid
    body.put_i16(2); // column number
    body.put_i32(25); // text
    body.put_i16(-1);
    body.put_i32(-1);
    body.put_i16(0);
    tagged(out, b'T', &body);
}

fn data_row(out: &mut BytesMut, value: &[u8]) {
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_i32(value.len() as i32);
    body.put_slice(value);
    tagged(out, b'D', &body);
}

/// The server's reply to [`extended_batch`] with `rows` rows.
fn reply_batch(rows: usize) -> BytesMut {
    let mut b = BytesMut::new();
    tagged(&mut b, b'1', &[]);
    tagged(&mut b, b'2', &[]);
    row_description(&mut b);
    for _ in 0..rows {
        data_row(&mut b, b"a87ff679a2f3e71d9181a67b7542122c");
    }
    server_msgs::command_complete(&mut b, &format!("SELECT {rows}"));
    server_msgs::ready_for_query(&mut b, b'I');
    b
}

fn frontend_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pg/frontend");
    let query = query_message("SELECT v FROM maitred_bench WHERE id = 42");
    g.throughput(Throughput::Bytes(query.len() as u64));
    g.bench_function("Query: frame + SQL effects", |b| {
        b.iter(|| {
            let (tag, len) = frame::peek_header(black_box(&query), 1 << 20)
                .expect("valid")
                .expect("whole");
            let body = frame::body(&query[..len]);
            let sql = std::str::from_utf8(&body[..body.len() - 1]).expect("utf8");
            black_box((tag, sql_effects::effects(sql)))
        })
    });
    // What every pgbench -S transaction sends, and an ORM's query behind a sqlcommenter tag.
    for (name, sql) in [
        (
            "pgbench -S Query: SQL effects",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
        ),
        (
            "tagged ORM Query: SQL effects",
            "/* app=web,route=/orders,db_driver=psycopg */ SELECT o.id, o.total, o.created_at \
             FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE c.tenant_id = 42 AND o.status IN ('open', 'paid') ORDER BY o.created_at DESC LIMIT 50",
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(sql_effects::effects(black_box(sql)))));
    }
    let set = query_message("SET search_path TO app, public; SELECT 1");
    g.bench_function("Query with SET: frame + SQL effects", |b| {
        b.iter(|| {
            let body = frame::body(black_box(&set));
            let sql = std::str::from_utf8(&body[..body.len() - 1]).expect("utf8");
            black_box(sql_effects::effects(sql))
        })
    });
    let batch = extended_batch();
    g.throughput(Throughput::Bytes(batch.len() as u64));
    let mut out = BytesMut::with_capacity(256);
    g.bench_function(
        "Parse/Bind/Describe/Execute/Sync: frame + rename statement",
        |b| {
            b.iter(|| {
                out.clear();
                let mut rest = &batch[..];
                while let Some((tag, len)) = frame::peek_header(rest, 1 << 20).expect("valid") {
                    let msg = &rest[..len];
                    match tag {
                        b'P' => {
                            let parts = extended::split_parse(msg).expect("parse");
                            extended::write_parse(&mut out, "mtd_7", parts.definition);
                        }
                        b'B' => {
                            let _ = extended::bind_statement(msg).expect("bind");
                            extended::write_bind_renamed(&mut out, msg, "mtd_7").expect("rename");
                        }
                        _ => out.extend_from_slice(msg),
                    }
                    rest = &rest[len..];
                }
                black_box(out.len())
            })
        },
    );
    g.finish();
}

fn backend_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pg/backend");
    for rows in [1usize, 100] {
        let reply = reply_batch(rows);
        g.throughput(Throughput::Bytes(reply.len() as u64));
        g.bench_function(
            format!("reply with {rows} DataRow: frame + classify"),
            |b| {
                let mut unprepared = Vec::new();
                b.iter(|| {
                    let mut replies = Replies::default();
                    for r in [
                        Request::Parse(Some(7)),
                        Request::Bind,
                        Request::Describe,
                        Request::Execute,
                        Request::UntilReady,
                    ] {
                        replies.client(r);
                    }
                    let mut rest = &reply[..];
                    let mut forwarded = 0;
                    while let Some((tag, len)) = frame::peek_header(rest, 1 << 30).expect("valid") {
                        if replies.on_server_message(tag, &mut unprepared)
                            == maitred_pg::replies::Verdict::Forward
                        {
                            forwarded += len;
                        }
                        rest = &rest[len..];
                    }
                    assert!(replies.is_empty());
                    black_box(forwarded)
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("pg/encode");
    let mut out = BytesMut::with_capacity(256);
    g.bench_function("CommandComplete + ReadyForQuery", |b| {
        b.iter(|| {
            out.clear();
            server_msgs::command_complete(&mut out, black_box("SELECT 1"));
            server_msgs::ready_for_query(&mut out, b'I');
            black_box(out.len())
        })
    });
    g.bench_function("ErrorResponse", |b| {
        b.iter(|| {
            out.clear();
            server_msgs::error_response(
                &mut out,
                &ErrorFields {
                    severity: Severity::Error,
                    code: black_box("53300"),
                    message: "too many clients waiting for pool app",
                    detail: None,
                    hint: None,
                },
            );
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, frontend_benches, backend_benches);
criterion_main!(benches);

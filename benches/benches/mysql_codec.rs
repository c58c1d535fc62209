//! MySQL codec micro-benchmarks: packet framing (a command taken off the client's buffer,
//! packets written), OK/ERR decode and encode, and following a result set to its end, as
//! the relay does for every response.
//!
//! `cargo bench -p maitred-bench --bench mysql_codec`

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use maitred_mysql::codec::frame;
use maitred_mysql::codec::packets::{self, OkInfo};
use maitred_mysql::codec::response::{Expect, ResponseScanner, Step};

const COM_QUERY: u8 = 0x03;
const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;

fn packet(out: &mut BytesMut, seq: u8, payload: &[u8]) -> u8 {
    frame::write_packet(out, seq, payload)
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    packets::put_lenenc(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn eof(status: u16) -> Vec<u8> {
    let mut p = vec![packets::EOF, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    p
}

/// The response to `SELECT v FROM maitred_bench WHERE id = ...` with `rows` rows: column
/// count, one column definition, EOF, the rows, EOF.
fn result_set(rows: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = packet(&mut out, 1, &[1]);
    let mut def = Vec::new();
    for s in [
        &b"def"[..],
        b"app",
        b"maitred_bench",
        b"maitred_bench",
        b"v",
        b"v",
    ] {
        lenenc_str(&mut def, s);
    }
    def.push(0x0c);
    def.extend_from_slice(&33u16.to_le_bytes());
    def.extend_from_slice(&256u32.to_le_bytes());
    def.push(0xfd); // VAR_STRING
    def.extend_from_slice(&[0, 0, 0, 0, 0]);
    seq = packet(&mut out, seq, &def);
    seq = packet(&mut out, seq, &eof(SERVER_STATUS_AUTOCOMMIT));
    let mut row = Vec::new();
    lenenc_str(&mut row, b"a87ff679a2f3e71d9181a67b7542122c");
    for _ in 0..rows {
        seq = packet(&mut out, seq, &row);
    }
    packet(&mut out, seq, &eof(SERVER_STATUS_AUTOCOMMIT));
    out
}

fn framing(c: &mut Criterion) {
    let mut g = c.benchmark_group("mysql/frame");
    let mut query = vec![COM_QUERY];
    query.extend_from_slice(b"SELECT v FROM maitred_bench WHERE id = 42");
    let mut buf = BytesMut::new();
    packet(&mut buf, 0, &query);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("take_command (COM_QUERY)", |b| {
        b.iter_batched(
            || buf.clone(),
            |mut b| {
                let cmd = frame::take_command(&mut b, 1 << 24)
                    .expect("valid")
                    .expect("whole");
                black_box(cmd)
            },
            BatchSize::SmallInput,
        )
    });
    let mut out = BytesMut::with_capacity(256);
    g.bench_function("write_packet (COM_QUERY)", |b| {
        b.iter(|| {
            out.clear();
            black_box(frame::write_packet(&mut out, 0, black_box(&query)))
        })
    });
    g.finish();
}

fn ok_err(c: &mut Criterion) {
    let mut g = c.benchmark_group("mysql/packets");
    let ok = OkInfo {
        affected_rows: 1,
        last_insert_id: 0,
        status: SERVER_STATUS_AUTOCOMMIT,
        warnings: 0,
    };
    let mut out = BytesMut::with_capacity(128);
    g.bench_function("write OK", |b| {
        b.iter(|| {
            out.clear();
            packets::write_ok(&mut out, 1, black_box(&ok));
            black_box(out.len())
        })
    });
    out.clear();
    packets::write_ok(&mut out, 1, &ok);
    let ok_payload = out[frame::HEADER_LEN..].to_vec();
    g.bench_function("parse OK", |b| {
        b.iter(|| black_box(packets::parse_ok(black_box(&ok_payload)).expect("OK")))
    });
    g.bench_function("write ERR", |b| {
        b.iter(|| {
            out.clear();
            packets::write_err(
                &mut out,
                1,
                1040,
                "08004",
                black_box("Too many connections"),
            );
            black_box(out.len())
        })
    });
    out.clear();
    packets::write_err(&mut out, 1, 1040, "08004", "Too many connections");
    let err_payload = out[frame::HEADER_LEN..].to_vec();
    g.bench_function("parse ERR", |b| {
        b.iter(|| black_box(packets::parse_err(black_box(&err_payload)).expect("ERR")))
    });
    g.finish();
}

fn result_sets(c: &mut Criterion) {
    let mut g = c.benchmark_group("mysql/response");
    for rows in [1usize, 100] {
        let response = result_set(rows);
        g.throughput(Throughput::Bytes(response.len() as u64));
        g.bench_function(
            format!("result set with {rows} rows: frame + follow"),
            |b| {
                b.iter(|| {
                    let mut scanner = ResponseScanner::default();
                    scanner.start(Expect::Results);
                    let mut rest = &response[..];
                    loop {
                        let (len, _) = frame::peek_packet(rest, 1 << 24)
                            .expect("valid")
                            .expect("whole");
                        let payload = &rest[frame::HEADER_LEN..frame::HEADER_LEN + len];
                        let step = scanner.on_packet(payload, len).expect("valid response");
                        rest = &rest[frame::HEADER_LEN + len..];
                        if let Step::Done(status) = step {
                            assert!(rest.is_empty());
                            break black_box(status);
                        }
                    }
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, framing, ok_err, result_sets);
criterion_main!(benches);

//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: each feeds
//! arbitrary bytes through the decoding functions the session, relay and back end use.
//!
//! They return nothing and panic only when the codec breaks a promise: a panic inside the
//! codec, a declared length that got past its bound or reserved memory it had not earned,
//! or a message maitred can re-encode that does not re-encode to the same bytes. Inputs are
//! what a peer could send, so every error path is a normal outcome here.

use crate::auth::scram::{
    client_first_user, derive_keys_with_salt, Mechanism, ScramClient, ScramKeys, ScramServer,
};
use crate::backend::{is_ok, reply_body, ServerInfo};
use crate::codec::compressed::{self, Compressor};
use crate::codec::header::decode_frame;
use crate::codec::legacy::{encode_reply, parse_query};
use crate::codec::{op_msg, Header, OpCode, DEFAULT_MAX_MESSAGE, HEADER_LEN};
use crate::hello::hello_kind;
use crate::relay::{reply_cursor, Route};
use bson::RawDocument;
use bytes::BytesMut;
use std::sync::OnceLock;

/// Buffer room a partial message may hold beyond the bytes that arrived.
const RESERVE_SLACK: usize = 1 << 20;

/// A peer's byte stream, framed as the session and the back end frame it (with the default
/// size bound), each whole message read as they read it: OP_COMPRESSED decompressed, OP_MSG
/// parsed and routed, OP_QUERY parsed, replies read for their body and cursor.
pub fn messages(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        match decode_frame(&mut buf, DEFAULT_MAX_MESSAGE) {
            Ok(Some((h, msg))) => {
                assert_eq!(h.length, msg.len());
                message(h, &msg);
            }
            Ok(None) => {
                assert!(
                    buf.capacity() <= data.len() + RESERVE_SLACK,
                    "a partial message reserved {} bytes for {} received",
                    buf.capacity(),
                    data.len()
                );
                return;
            }
            Err(_) => return,
        }
    }
}

fn message(h: Header, msg: &[u8]) {
    if h.op_code != OpCode::Compressed {
        return uncompressed(h, msg);
    }
    let Ok(inner) = compressed::decompress(msg, DEFAULT_MAX_MESSAGE) else {
        return;
    };
    let c = Compressor::from_id(msg[HEADER_LEN + 8]).expect("decompress checked the id");
    let Ok(Some(ih)) = Header::peek(&inner, DEFAULT_MAX_MESSAGE) else {
        panic!("a decompressed message has a valid header");
    };
    assert_eq!(ih.length, inner.len());
    assert_eq!(
        (ih.request_id, ih.response_to),
        (h.request_id, h.response_to)
    );
    let mut again = BytesMut::new();
    compressed::compress(&inner, c, &mut again).expect("compresses");
    let back = compressed::decompress(&again, DEFAULT_MAX_MESSAGE).expect("decompresses");
    assert_eq!(&back[..], &inner[..], "OP_COMPRESSED round trip");
    uncompressed(ih, &inner);
}

fn uncompressed(h: Header, msg: &[u8]) {
    match h.op_code {
        OpCode::Msg => op_msg(h, msg),
        OpCode::Query => {
            if let Ok(q) = parse_query(msg) {
                let _ = (q.is_command(), q.database(), q.flags);
                let body = q.query.get_document("$query").unwrap_or(q.query);
                command(body);
            }
        }
        OpCode::Reply => {
            if let Ok(doc) = reply_body(msg) {
                reply(&doc);
                let mut again = BytesMut::new();
                encode_reply(&mut again, h.request_id, h.response_to, doc.as_bytes());
                // Byte-exact only for the reply shape maitred writes (one document).
                if again.len() == msg.len()
                    && msg[HEADER_LEN..HEADER_LEN + 20] == again[HEADER_LEN..HEADER_LEN + 20]
                {
                    assert_eq!(&again[..], msg, "OP_REPLY round trip");
                }
            }
        }
        _ => {}
    }
}

fn op_msg(h: Header, msg: &[u8]) {
    let Ok(m) = op_msg::parse(msg) else {
        return;
    };
    let _ = (m.more_to_come(), m.exhaust_allowed());
    command(m.body);
    reply(m.body);
    let _ = reply_body(msg).expect("a parsed OP_MSG has a body");
    // One body section and nothing else is what maitred writes: it must re-encode.
    if m.sequences.is_empty() {
        let mut again = BytesMut::new();
        op_msg::encode(
            &mut again,
            h.request_id,
            h.response_to,
            m.flags,
            m.body.as_bytes(),
        );
        if m.flags & op_msg::CHECKSUM_PRESENT != 0 {
            op_msg::add_checksum(&mut again);
        }
        if again.len() == msg.len() {
            assert_eq!(&again[..], msg, "OP_MSG round trip");
        }
    }
    // Stripping exhaustAllowed (and a checksum) leaves a valid message.
    let mut stripped = BytesMut::from(msg);
    op_msg::clear_flags(&mut stripped, op_msg::EXHAUST_ALLOWED);
    let again = op_msg::parse(&stripped).expect("a stripped OP_MSG parses");
    assert_eq!(again.flags & op_msg::EXHAUST_ALLOWED, 0);
    assert_eq!(again.body.as_bytes(), m.body.as_bytes());
}

/// What the session reads from a command before answering or forwarding it.
fn command(body: &RawDocument) {
    let name = body
        .iter()
        .next()
        .and_then(|e| e.ok())
        .map(|(k, _)| k)
        .unwrap_or_default();
    let _ = hello_kind(name);
    let _ = Route::of(name, body, 0);
    let _ = body.get_str("mechanism");
    if let Ok(Some(bson::RawBsonRef::Binary(b))) = body.get("payload") {
        let _ = client_first_user(b.bytes);
    }
}

/// What the relay and back end read from a reply.
fn reply(body: &RawDocument) {
    let _ = reply_cursor(body);
    let _ = is_ok(body);
    let _ = ServerInfo::from_hello(body);
}

fn keys(m: Mechanism) -> &'static ScramKeys {
    static SHA1: OnceLock<ScramKeys> = OnceLock::new();
    static SHA256: OnceLock<ScramKeys> = OnceLock::new();
    let cell = match m {
        Mechanism::Sha1 => &SHA1,
        Mechanism::Sha256 => &SHA256,
    };
    cell.get_or_init(|| {
        derive_keys_with_salt(m, "user", "pencil", b"maitred-fuzz-salt".to_vec(), 4096)
    })
}

/// SCRAM-SHA-1 / SCRAM-SHA-256 exchanges. The first byte picks the side (bit 0) and the
/// mechanism (bit 1), the rest is two messages separated by a NUL:
/// - side 0: maitred's server side (a client logging in): client-first, client-final;
/// - side 1: maitred's client side (logging in to a server): server-first, server-final.
///
/// The peer's echo of the other side's random nonce is patched in, so the exchange gets
/// past the nonce check as with a real peer.
pub fn scram(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = if pick & 2 == 0 {
        Mechanism::Sha256
    } else {
        Mechanism::Sha1
    };
    let (first, last) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if pick & 1 == 0 {
        let _ = client_first_user(first);
        let Ok((server, server_first)) = ScramServer::start(keys(mechanism).clone(), first) else {
            return;
        };
        let nonce = attr(&server_first, "r=").unwrap_or_default();
        let _ = server.finish(&replace_nonce(last, |_| nonce.to_owned()));
    } else {
        let mut client = ScramClient::new(mechanism, "user", "pencil");
        let client_first = client.client_first();
        let client_nonce = attr(&client_first, "r=").unwrap_or_default().to_owned();
        let first = replace_nonce(first, |r| format!("{client_nonce}{r}"));
        if client.client_final(&first).is_ok() {
            let _ = client.verify(last);
        }
    }
}

fn attr<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split(',').find_map(|a| a.strip_prefix(name))
}

/// `msg` with its `r=` value replaced by `f(value)`.
fn replace_nonce(msg: &[u8], f: impl Fn(&str) -> String) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(msg) else {
        return msg.to_vec();
    };
    let parts: Vec<String> = text
        .split(',')
        .map(|a| match a.strip_prefix("r=") {
            Some(r) => format!("r={}", f(r)),
            None => a.to_owned(),
        })
        .collect();
    parts.join(",").into_bytes()
}

//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: each feeds
//! arbitrary bytes through the decoding functions the front end, back end and relay use.
//!
//! They return nothing and panic only when the codec breaks a promise: a panic inside the
//! codec, a declared length over its bound that got through, or a message maitred can
//! re-encode that does not re-encode to the same bytes. Inputs are what a peer could send,
//! so every error path is a normal outcome here.

use crate::auth::scram::ScramServer;
use crate::auth::secret::{derive_keys_with_salt, ScramKeys};
use crate::backend::{error_fields, MAX_SERVER_MESSAGE};
use crate::codec::client_msgs::{self, tag};
use crate::codec::extended::{self, Target};
use crate::codec::server_msgs as out;
use crate::codec::startup::{decode_startup, StartupPacket, MAX_STARTUP_LEN};
use crate::codec::{frame, CodecError};
use crate::notify::listen_command;
use crate::relay::MAX_CLIENT_MESSAGE;
use crate::replies::{Replies, Request};
use crate::sql_effects;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use std::sync::OnceLock;

/// A client's byte stream: an optional startup phase (SSLRequest, GSSENCRequest,
/// StartupMessage), then tagged messages (login answers, simple and extended queries).
pub fn client_messages(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        match decode_startup(&mut buf) {
            Ok(Some(StartupPacket::SslRequest | StartupPacket::GssEncRequest)) => continue,
            Ok(Some(StartupPacket::Cancel { .. })) => return,
            Ok(Some(StartupPacket::Startup(p))) => {
                let _ = (p.user(), p.database());
                break;
            }
            Err(CodecError::BadLength { len, .. }) => {
                assert!(!(8..=MAX_STARTUP_LEN).contains(&len), "bound not applied");
                buf = BytesMut::from(data);
                break;
            }
            // Not a startup packet: read the input as tagged messages from the start.
            Ok(None) | Err(_) => {
                buf = BytesMut::from(data);
                break;
            }
        }
    }
    while let Ok(Some((t, len))) = frame::peek_header(&buf, MAX_CLIENT_MESSAGE) {
        assert!((frame::HEADER_LEN..=MAX_CLIENT_MESSAGE + 1).contains(&len));
        if buf.len() < len {
            return;
        }
        let msg = buf.split_to(len);
        client_message(t, &msg);
    }
}

fn client_message(t: u8, msg: &[u8]) {
    match t {
        tag::PASSWORD => {
            let _ = client_msgs::password_text(msg);
            let _ = client_msgs::password_payload(msg);
            if let Ok(s) = client_msgs::sasl_initial(msg) {
                let mut again = BytesMut::new();
                postgres_protocol::message::frontend::sasl_initial_response(
                    s.mechanism,
                    s.data,
                    &mut again,
                )
                .expect("SASLInitialResponse re-encodes");
                assert_eq!(&again[..], msg, "SASLInitialResponse round trip");
            }
        }
        tag::QUERY => {
            if let Some(sql) = query_text(msg) {
                let _ = sql_effects::effects(sql);
                let _ = sql_effects::deallocate_name(sql);
                let _ = listen_command(sql);
            }
        }
        tag::PARSE => {
            let name = client_msgs::parse_statement_name(msg);
            if let Ok(parts) = extended::split_parse(msg) {
                assert_eq!(name, Ok(parts.name));
                if let Some(sql) = extended::parse_query_text(parts.definition) {
                    let _ = sql_effects::effects(sql);
                }
                let mut again = BytesMut::new();
                extended::write_parse(&mut again, parts.name, parts.definition);
                assert_eq!(&again[..], msg, "Parse round trip");
            }
        }
        tag::BIND => {
            if let Ok(name) = extended::bind_statement(msg) {
                let mut same = BytesMut::new();
                extended::write_bind_renamed(&mut same, msg, name).expect("Bind renames");
                assert_eq!(&same[..], msg, "Bind round trip");
                let mut renamed = BytesMut::new();
                extended::write_bind_renamed(&mut renamed, msg, "mtd_1").expect("Bind renames");
                assert_eq!(extended::bind_statement(&renamed), Ok("mtd_1"));
                let header = frame::peek_header(&renamed, usize::MAX);
                assert_eq!(header, Ok(Some((tag::BIND, renamed.len()))));
            }
        }
        tag::DESCRIBE | tag::CLOSE => {
            if let Ok(Target::Statement(name)) = extended::describe_or_close_target(msg) {
                if msg.len() == frame::HEADER_LEN + name.len() + 2 {
                    let mut again = BytesMut::new();
                    extended::write_statement_target(&mut again, t, name);
                    assert_eq!(&again[..], msg, "Describe/Close round trip");
                }
            }
        }
        _ => {}
    }
}

/// The SQL text of a Query message, as the relay reads it (`relay::query_text`).
fn query_text(msg: &[u8]) -> Option<&str> {
    let body = frame::body(msg);
    let end = body.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&body[..end]).ok()
}

/// A server's byte stream: each whole message is classified as the relay does (tags,
/// ReadyForQuery status, CommandComplete tags) and parsed as the back end's login and reset
/// paths do (postgres-protocol). Messages maitred also writes itself must re-encode
/// byte for byte.
pub fn server_messages(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut replies = Replies::default();
    for r in [
        Request::Parse(Some(1)),
        Request::Bind,
        Request::Describe,
        Request::Execute,
        Request::UntilReady,
    ] {
        replies.client(r);
    }
    let mut unprepared = Vec::new();
    let mut released = BytesMut::new();
    while let Ok(Some((t, len))) = frame::peek_header(&buf, MAX_SERVER_MESSAGE) {
        if buf.len() < len {
            return;
        }
        let msg = buf.split_to(len);
        let _ = replies.on_server_message(t, &mut unprepared);
        replies.release_composed(&mut released);
        if t == b'Z' {
            let _ = msg.get(frame::HEADER_LEN).copied().unwrap_or(b'I');
        }
        let mut parse_buf = msg.clone();
        match Message::parse(&mut parse_buf) {
            Ok(Some(m)) => {
                assert!(parse_buf.is_empty(), "a whole message is consumed");
                server_message(m, &msg);
            }
            Ok(None) => panic!("a whole message was reported incomplete"),
            Err(_) => {}
        }
    }
}

fn server_message(m: Message, msg: &[u8]) {
    let mut again = BytesMut::new();
    match m {
        Message::AuthenticationOk => out::authentication_ok(&mut again),
        Message::AuthenticationCleartextPassword => out::authentication_cleartext(&mut again),
        Message::AuthenticationMd5Password(b) => out::authentication_md5(&mut again, b.salt()),
        Message::AuthenticationSasl(b) => {
            let mut names = Vec::new();
            let mut it = b.mechanisms();
            loop {
                match it.next() {
                    Ok(Some(n)) => names.push(n),
                    Ok(None) => break,
                    // An unterminated list (postgres-protocol reads it lazily).
                    Err(_) => return,
                }
            }
            out::authentication_sasl(&mut again, &names);
        }
        Message::AuthenticationSaslContinue(b) => {
            out::authentication_sasl_continue(&mut again, b.data())
        }
        Message::AuthenticationSaslFinal(b) => out::authentication_sasl_final(&mut again, b.data()),
        Message::ParameterStatus(b) => {
            if let (Ok(name), Ok(value)) = (b.name(), b.value()) {
                out::parameter_status(&mut again, name, value);
            }
        }
        Message::BackendKeyData(b) => {
            out::backend_key_data(&mut again, b.process_id() as u32, b.secret_key() as u32)
        }
        Message::ReadyForQuery(b) => out::ready_for_query(&mut again, b.status()),
        Message::CommandComplete(b) => {
            if let Ok(t) = b.tag() {
                out::command_complete(&mut again, t);
            }
        }
        Message::ParseComplete => out::parse_complete(&mut again),
        Message::CloseComplete => out::close_complete(&mut again),
        Message::ErrorResponse(b) => {
            let _ = error_fields(&b);
            return;
        }
        _ => return,
    }
    // Only messages whose body postgres-protocol reads whole can be compared: an
    // AuthenticationSASL list or a string may be followed by bytes it skips.
    if again.len() == msg.len() {
        assert_eq!(&again[..], msg, "server message round trip");
    }
}

/// Keys of the user the SCRAM target logs in as.
fn scram_keys() -> &'static ScramKeys {
    static KEYS: OnceLock<ScramKeys> = OnceLock::new();
    KEYS.get_or_init(|| derive_keys_with_salt("pencil", b"maitred-fuzz-salt".to_vec(), 4096))
}

/// SCRAM-SHA-256 exchanges. The first byte picks the side, the rest is two messages
/// separated by a NUL (SCRAM messages are printable text):
/// - even: maitred's server side (a client logging in): client-first, client-final;
/// - odd: maitred's client side (logging in to a server): server-first, server-final.
///
/// The peer's echo of the other side's random nonce is patched in, so the exchange gets
/// past the nonce check as with a real peer.
pub fn scram(data: &[u8]) {
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    let (first, last) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if side % 2 == 0 {
        let Ok((server, server_first)) = ScramServer::start(scram_keys().clone(), first) else {
            return;
        };
        let nonce = attr(&server_first, "r=").unwrap_or_default();
        let last = with_nonce(last, nonce);
        let _ = server.finish(&last);
    } else {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        let mut client = ScramSha256::new(b"pencil", ChannelBinding::unsupported());
        let client_first = String::from_utf8_lossy(client.message()).into_owned();
        let client_nonce = attr(&client_first, "r=").unwrap_or_default();
        let first = with_nonce_prefix(first, client_nonce);
        // The back end checks the iteration count before the (costly) update, as here.
        if crate::auth::scram::check_server_first_iterations(&first).is_ok()
            && client.update(&first).is_ok()
        {
            let _ = client.finish(last);
        }
    }
}

fn attr<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split(',').find_map(|a| a.strip_prefix(name))
}

/// `msg` with its `r=` attribute replaced by `nonce` (unchanged if it has none).
fn with_nonce(msg: &[u8], nonce: &str) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(msg) else {
        return msg.to_vec();
    };
    let parts: Vec<String> = text
        .split(',')
        .map(|a| match a.strip_prefix("r=") {
            Some(_) => format!("r={nonce}"),
            None => a.to_owned(),
        })
        .collect();
    parts.join(",").into_bytes()
}

/// `msg` with `prefix` put in front of its `r=` value (a server nonce extends the client's).
fn with_nonce_prefix(msg: &[u8], prefix: &str) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(msg) else {
        return msg.to_vec();
    };
    let parts: Vec<String> = text
        .split(',')
        .map(|a| match a.strip_prefix("r=") {
            Some(r) => format!("r={prefix}{r}"),
            None => a.to_owned(),
        })
        .collect();
    parts.join(",").into_bytes()
}

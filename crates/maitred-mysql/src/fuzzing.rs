//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: each feeds
//! arbitrary bytes through the decoding functions the front end, back end and relay use.
//!
//! They return nothing and panic only when the codec breaks a promise: a panic inside the
//! codec, a declared length over its bound that got through, or a packet that does not
//! survive being written back and read again. Inputs are what a peer could send, so every
//! error path is a normal outcome here.

use crate::auth;
use crate::codec::packets::{self, AUTH_MORE_DATA, EOF, ERR, OK};
use crate::codec::response::{Expect, ResponseScanner, Step};
use crate::codec::{cap, command, frame, stmt};
use crate::sql_effects;
use bytes::BytesMut;

/// The client packet bound the fuzz targets use (the pool's default `max_client_packet`
/// is larger; a small bound keeps allocations visible to the fuzzer).
const MAX_CLIENT_PACKET: usize = 1 << 20;

/// A client's byte stream: the handshake response, then commands as the relay takes them
/// (sequence checks, continuation packets) and reads them (statement ids, parameter types,
/// COM_CHANGE_USER, the SQL scans of COM_QUERY).
pub fn client_packets(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    if let Ok(Some((len, _))) = frame::peek_packet(&buf, MAX_CLIENT_PACKET) {
        let payload = buf
            .split_to(frame::HEADER_LEN + len)
            .split_off(frame::HEADER_LEN);
        match packets::parse_client_hello(&payload) {
            Ok(hello) => hello_round_trip(&hello),
            // Not a handshake response: read the whole input as commands.
            Err(_) => buf = BytesMut::from(data),
        }
    }
    loop {
        match frame::take_command(&mut buf, MAX_CLIENT_PACKET) {
            Ok(Some(payload)) => {
                assert!(payload.len() <= MAX_CLIENT_PACKET, "bound not applied");
                client_command(&payload);
            }
            Ok(None) => {
                assert!(
                    buf.capacity() <= data.len() + (1 << 20) + 64,
                    "over-reserved"
                );
                return;
            }
            Err(_) => return,
        }
    }
}

fn hello_round_trip(hello: &packets::ClientHello) {
    let plugin = hello.auth_plugin.clone().unwrap_or_default();
    let caps = hello.capabilities & (cap::SUPPORTED | cap::CONNECT_WITH_DB);
    let again = packets::client_hello(
        caps,
        hello.collation,
        &hello.user,
        &hello.auth_response,
        hello.database.as_deref(),
        &plugin,
    );
    // Only a user name that is valid UTF-8 and an auth response of less than 251 bytes
    // (maitred's own sizes) is expected back unchanged.
    if hello.auth_response.len() < 251 && !hello.user.contains('\u{fffd}') {
        let back = packets::parse_client_hello(&again).expect("maitred's hello parses");
        assert_eq!(back.user, hello.user);
        assert_eq!(back.auth_response, hello.auth_response);
        assert_eq!(back.collation, hello.collation);
    }
}

fn client_command(payload: &[u8]) {
    let Some(&cmd) = payload.first() else {
        return;
    };
    let _ = Expect::of(cmd);
    match cmd {
        command::QUERY => {
            let sql = &payload[1..];
            let _ = sql_effects::kill_target(sql);
            let _ = sql_effects::rewrite_connection_id(sql, 7);
            let _ = sql_effects::rewrite_last_insert_id(sql, 42);
            let _ = sql_effects::classify(sql);
            sql_text(payload);
        }
        command::CHANGE_USER => {
            for caps in [cap::SUPPORTED, cap::SUPPORTED & !cap::SECURE_CONNECTION] {
                let _ = packets::parse_change_user(payload, caps);
            }
        }
        command::STMT_EXECUTE
        | command::STMT_SEND_LONG_DATA
        | command::STMT_RESET
        | command::STMT_FETCH
        | command::STMT_CLOSE => {
            let Ok(id) = stmt::statement_id(payload) else {
                return;
            };
            let mut p = payload.to_vec();
            stmt::set_statement_id(&mut p, id.wrapping_add(1)).expect("id slot exists");
            assert_eq!(stmt::statement_id(&p), Ok(id.wrapping_add(1)));
            if cmd == command::STMT_EXECUTE {
                // The parameter count comes from the statement's COM_STMT_PREPARE_OK; try a
                // few, as the relay may know any.
                for params in [0usize, 1, 2, 9, 64] {
                    execute_types(payload, params);
                }
            }
        }
        _ => {}
    }
}

fn execute_types(payload: &[u8], params: usize) {
    let types: Vec<u8> = (0..2 * params).map(|i| (i % 251) as u8).collect();
    match stmt::execute_param_types(payload, params) {
        Ok(Some(t)) => assert_eq!(t.len(), 2 * params),
        Ok(None) => {
            if let Ok(Some(p)) = stmt::execute_with_types(payload, params, &types) {
                assert_eq!(p.len(), payload.len() + types.len());
                assert_eq!(
                    stmt::execute_param_types(&p, params),
                    Ok(Some(&types[..])),
                    "types inserted are read back"
                );
            }
        }
        Err(_) => {}
    }
}

/// A server's byte stream. The first byte picks the response shape the scanner follows
/// (as after each kind of command); the rest is packets: the greeting or an ERR, then
/// responses, each followed by the relay's scanner and read by the back end's parsers.
pub fn server_packets(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let shapes = [
        Expect::Results,
        Expect::Status,
        Expect::Fetch,
        Expect::Prepare,
        Expect::FieldList,
        Expect::AnyOne,
    ];
    let expect = shapes[usize::from(pick) % shapes.len()];
    let mut buf = rest;
    let mut scanner = ResponseScanner::default();
    scanner.start(expect);
    let mut first = true;
    while let Ok(Some((len, _seq))) = frame::peek_packet(buf, crate::backend::MAX_SERVER_PACKET) {
        let payload = &buf[frame::HEADER_LEN..frame::HEADER_LEN + len];
        buf = &buf[frame::HEADER_LEN + len..];
        if first {
            first = false;
            if payload.first() == Some(&10) {
                greeting_round_trip(payload);
                continue;
            }
        }
        server_packet(payload);
        if !scanner.is_busy() {
            scanner.start(expect);
        }
        match scanner.on_packet(payload, len) {
            Ok(Step::Done(_)) | Ok(Step::More) | Ok(Step::LocalInfile) => {}
            Err(_) => scanner = ResponseScanner::default(),
        }
    }
}

fn greeting_round_trip(payload: &[u8]) {
    let Ok(g) = packets::parse_greeting(payload) else {
        return;
    };
    let Ok(nonce) = <[u8; 20]>::try_from(&g.nonce[..]) else {
        return;
    };
    // maitred's greeting has a 20-byte nonce; one with a NUL in it cannot be read back.
    if nonce.contains(&0) || g.server_version.contains('\0') || g.auth_plugin.contains(&0) {
        return;
    }
    let again = packets::greeting(
        &g.server_version,
        g.connection_id,
        &nonce,
        g.capabilities,
        g.collation,
        &g.auth_plugin,
    );
    let back = packets::parse_greeting(&again).expect("maitred's greeting parses");
    assert_eq!(back.connection_id, g.connection_id);
    assert_eq!(back.nonce, g.nonce);
    assert_eq!(back.collation, g.collation);
}

fn server_packet(payload: &[u8]) {
    match payload.first() {
        Some(&OK) => {
            let _ = stmt::parse_prepare_ok(payload);
            if let Ok(ok) = packets::parse_ok(payload) {
                let mut again = BytesMut::new();
                packets::write_ok(&mut again, 1, &ok);
                assert_eq!(packets::parse_ok(&again[frame::HEADER_LEN..]), Ok(ok));
            }
        }
        Some(&ERR) => {
            if let Ok(e) = packets::parse_err(payload) {
                let mut again = BytesMut::new();
                packets::write_err(&mut again, 1, e.code, &e.sqlstate, &e.message);
                let back = packets::parse_err(&again[frame::HEADER_LEN..]).expect("ERR parses");
                assert_eq!(back.code, e.code);
                if e.sqlstate.len() == 5 {
                    assert_eq!(back.sqlstate, e.sqlstate);
                }
            }
        }
        Some(&EOF) => {
            let _ = packets::is_eof(payload);
            let _ = packets::eof_status(payload);
            let _ = packets::parse_ok(payload);
            let _ = packets::parse_auth_switch(payload);
        }
        _ => {}
    }
}

/// Login exchanges. The first byte picks the side, the rest is packets:
/// - even: maitred checking a client: its handshake response, then the answer to an auth
///   switch (as the front end reads them);
/// - odd: maitred logging in to a server: the greeting, then auth switch requests, "more
///   data" and OK/ERR packets (as the back end reads them). The RSA public key a server
///   sends for full authentication is not fed: mysql_common's PEM parser panics on bad keys
///   by design, and maitred calls it under `catch_unwind` (see `auth::rsa_encrypted_password`).
pub fn auth_exchange(data: &[u8]) {
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    let mut packets_in = Vec::new();
    let mut buf = rest;
    while let Ok(Some((len, _))) = frame::peek_packet(buf, 64 * 1024) {
        packets_in.push(&buf[frame::HEADER_LEN..frame::HEADER_LEN + len]);
        buf = &buf[frame::HEADER_LEN + len..];
    }
    let scramble = *b"0123456789abcdefghij";
    if side % 2 == 0 {
        let Some((hello, more)) = packets_in.split_first() else {
            return;
        };
        let Ok(hello) = packets::parse_client_hello(hello) else {
            return;
        };
        let plugin = hello.auth_plugin.unwrap_or_else(|| auth::NATIVE.to_vec());
        let r = auth::verify(&plugin, &scramble, b"pencil", &hello.auth_response);
        if plugin == auth::NATIVE || plugin == auth::CACHING_SHA2 {
            assert!(!matches!(r, Err(auth::AuthError::UnsupportedPlugin(_))));
        }
        for answer in more {
            let _ = auth::verify(auth::NATIVE, &scramble, b"pencil", answer);
        }
        return;
    }
    let mut plugin = auth::NATIVE.to_vec();
    let mut nonce = scramble.to_vec();
    for (i, p) in packets_in.iter().enumerate() {
        match p.first() {
            Some(&10) if i == 0 => {
                if let Ok(g) = packets::parse_greeting(p) {
                    if g.auth_plugin == auth::CACHING_SHA2 {
                        plugin = g.auth_plugin;
                    }
                    nonce = g.nonce;
                }
            }
            Some(&OK) => {
                let _ = packets::parse_ok(p);
            }
            Some(&ERR) => {
                let _ = packets::parse_err(p);
            }
            Some(&EOF) => {
                if let Ok((p, data)) = packets::parse_auth_switch(p) {
                    if p == auth::NATIVE || p == auth::CACHING_SHA2 {
                        plugin = p;
                        nonce = data;
                    }
                }
            }
            Some(&AUTH_MORE_DATA) => {
                let _ = matches!(p.get(1..), Some([auth::FAST_AUTH_OK] | [auth::FULL_AUTH]));
            }
            _ => {}
        }
        let answer = auth::expected_answer(&plugin, &nonce, b"pencil");
        if let Some(a) = answer {
            assert_eq!(auth::verify(&plugin, &nonce, b"pencil", &a), Ok(()));
        }
    }
}

/// SQL text as the relay reads a COM_QUERY's (the first byte picks the `sql_mode` quoting:
/// bit 0 off = no backslash escapes, bit 1 = ANSI_QUOTES): the lexer, the analysis and the
/// rewrites. Promises: no panic; every token lies inside the text in order; a statement's
/// tokens are inside the token list; text without any rewrite target comes back `None`.
pub fn sql_text(data: &[u8]) {
    let Some((&flags, sql)) = data.split_first() else {
        return;
    };
    let mode = crate::sql_effects::lexer::LexMode {
        backslash_escapes: flags & 1 == 0,
        ansi_quotes: flags & 2 != 0,
    };
    let lexed = crate::sql_effects::lexer::lex_with(sql, mode);
    let mut last_end = 0;
    for t in &lexed.tokens {
        assert!(t.start >= last_end && t.start < t.end && t.end <= sql.len());
        last_end = t.end;
    }
    for s in &lexed.statements {
        assert!(s.first < s.end && s.end <= lexed.tokens.len());
    }
    let _ = sql_effects::analyze_with(&lexed, mode);
    let rewritten = sql_effects::rewrite_query(&lexed, 7, 42);
    if !sql.windows(2).any(|w| w == b"@@") && !sql.contains(&b'(') {
        assert!(rewritten.is_none());
    }
    let _ = sql_effects::kill_target(sql);
}

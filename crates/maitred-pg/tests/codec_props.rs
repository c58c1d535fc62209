//! Property tests: what maitred's PostgreSQL codec writes, postgres-protocol (the client
//! and server library the tests use) reads back the same, and the other way round.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use maitred_pg::codec::client_msgs;
use maitred_pg::codec::extended::{self, Target};
use maitred_pg::codec::server_msgs::{self as out, ErrorFields, Severity};
use maitred_pg::codec::startup::{decode_startup, StartupPacket};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use proptest::prelude::*;

/// Text without NUL (what a C string can carry).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,40}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,20}"
}

proptest! {
    #[test]
    fn startup_round_trips(params in proptest::collection::vec((name(), text()), 0..6)) {
        let mut buf = BytesMut::new();
        frontend::startup_message(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut buf)
            .expect("encodes");
        let Ok(Some(StartupPacket::Startup(p))) = decode_startup(&mut buf) else {
            panic!("not a startup packet");
        };
        prop_assert_eq!(p.minor_version, 0);
        prop_assert_eq!(p.params, params);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn parse_round_trips_and_renames(stmt in name(), query in text(), types in proptest::collection::vec(any::<u32>(), 0..5), new in name()) {
        let mut msg = BytesMut::new();
        frontend::parse(&stmt, &query, types.iter().copied(), &mut msg).expect("encodes");
        let parts = extended::split_parse(&msg).expect("splits");
        prop_assert_eq!(parts.name, stmt.as_str());
        prop_assert_eq!(client_msgs::parse_statement_name(&msg), Ok(stmt.as_str()));
        let mut same = BytesMut::new();
        extended::write_parse(&mut same, parts.name, parts.definition);
        prop_assert_eq!(&same[..], &msg[..]);
        let mut renamed = BytesMut::new();
        extended::write_parse(&mut renamed, &new, parts.definition);
        let mut want = BytesMut::new();
        frontend::parse(&new, &query, types.iter().copied(), &mut want).expect("encodes");
        prop_assert_eq!(&renamed[..], &want[..]);
    }

    #[test]
    fn bind_renames(portal in name(), stmt in name(), new in name(), values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 0..4)) {
        let mut msg = BytesMut::new();
        let formats: Vec<i16> = values.iter().map(|_| 1).collect();
        frontend::bind(
            &portal,
            &stmt,
            formats.iter().copied(),
            values.iter(),
            |v, buf| match v {
                Some(b) => {
                    buf.extend_from_slice(b);
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            [1i16],
            &mut msg,
        )
        .map_err(|_| ())
        .expect("encodes");
        prop_assert_eq!(extended::bind_statement(&msg), Ok(stmt.as_str()));
        let mut renamed = BytesMut::new();
        extended::write_bind_renamed(&mut renamed, &msg, &new).expect("renames");
        prop_assert_eq!(extended::bind_statement(&renamed), Ok(new.as_str()));
        let mut back = BytesMut::new();
        extended::write_bind_renamed(&mut back, &renamed, &stmt).expect("renames");
        prop_assert_eq!(&back[..], &msg[..]);
    }

    #[test]
    fn describe_and_close_round_trip(stmt in name(), describe in any::<bool>()) {
        let tag = if describe { b'D' } else { b'C' };
        let mut msg = BytesMut::new();
        extended::write_statement_target(&mut msg, tag, &stmt);
        let mut want = BytesMut::new();
        if describe {
            frontend::describe(b'S', &stmt, &mut want).expect("encodes");
        } else {
            frontend::close(b'S', &stmt, &mut want).expect("encodes");
        }
        prop_assert_eq!(&msg[..], &want[..]);
        prop_assert_eq!(extended::describe_or_close_target(&msg), Ok(Target::Statement(stmt.as_str())));
    }

    #[test]
    fn sasl_initial_round_trips(mechanism in name(), data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut msg = BytesMut::new();
        frontend::sasl_initial_response(&mechanism, &data, &mut msg).expect("encodes");
        let s = client_msgs::sasl_initial(&msg).expect("parses");
        prop_assert_eq!(s.mechanism, mechanism.as_str());
        prop_assert_eq!(s.data, &data[..]);
    }

    #[test]
    fn server_messages_read_back(name in name(), value in text(), pid in any::<u32>(), key in any::<u32>(), status in prop::sample::select(vec![b'I', b'T', b'E']), tag in text(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = BytesMut::new();
        out::parameter_status(&mut buf, &name, &value);
        out::backend_key_data(&mut buf, pid, key);
        out::ready_for_query(&mut buf, status);
        out::command_complete(&mut buf, &tag);
        out::authentication_sasl_continue(&mut buf, &data);
        out::authentication_sasl_final(&mut buf, &data);
        let Some(Message::ParameterStatus(b)) = Message::parse(&mut buf).expect("parses") else { panic!("S") };
        prop_assert_eq!((b.name().expect("name"), b.value().expect("value")), (name.as_str(), value.as_str()));
        let Some(Message::BackendKeyData(b)) = Message::parse(&mut buf).expect("parses") else { panic!("K") };
        prop_assert_eq!((b.process_id() as u32, b.secret_key() as u32), (pid, key));
        let Some(Message::ReadyForQuery(b)) = Message::parse(&mut buf).expect("parses") else { panic!("Z") };
        prop_assert_eq!(b.status(), status);
        let Some(Message::CommandComplete(b)) = Message::parse(&mut buf).expect("parses") else { panic!("C") };
        prop_assert_eq!(b.tag().expect("tag"), tag.as_str());
        let Some(Message::AuthenticationSaslContinue(b)) = Message::parse(&mut buf).expect("parses") else { panic!("R 11") };
        prop_assert_eq!(b.data(), &data[..]);
        let Some(Message::AuthenticationSaslFinal(b)) = Message::parse(&mut buf).expect("parses") else { panic!("R 12") };
        prop_assert_eq!(b.data(), &data[..]);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn error_response_reads_back(code in "[0-9A-Z]{5}", message in text(), detail in proptest::option::of(text()), hint in proptest::option::of(text()), fatal in any::<bool>()) {
        let severity = if fatal { Severity::Fatal } else { Severity::Error };
        let mut buf = BytesMut::new();
        out::error_response(&mut buf, &ErrorFields { severity, code: &code, message: &message, detail: detail.as_deref(), hint: hint.as_deref() });
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).expect("parses") else { panic!("E") };
        let fields: Vec<(u8, String)> = body
            .fields()
            .map(|f| Ok((f.type_(), String::from_utf8_lossy(f.value_bytes()).into_owned())))
            .collect()
            .expect("fields");
        let sev = if fatal { "FATAL" } else { "ERROR" };
        let mut want = vec![(b'S', sev.to_owned()), (b'V', sev.to_owned()), (b'C', code.clone()), (b'M', message.clone())];
        if let Some(d) = detail { want.push((b'D', d)); }
        if let Some(h) = hint { want.push((b'H', h)); }
        prop_assert_eq!(fields, want);
    }
}

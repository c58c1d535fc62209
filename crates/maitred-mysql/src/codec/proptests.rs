//! Property tests: the codec round-trips what it writes and never panics on what it reads.

use super::packets::{self, OkInfo};
use super::response::{Expect, ResponseScanner};
use super::{frame, stmt};
use bytes::BytesMut;
use proptest::prelude::*;

proptest! {
    #[test]
    fn lenenc_round_trips(v in any::<u64>()) {
        let mut out = Vec::new();
        packets::put_lenenc(&mut out, v);
        let mut pos = 0;
        prop_assert_eq!(packets::read_lenenc(&out, &mut pos), Some(v));
        prop_assert_eq!(pos, out.len());
    }

    #[test]
    fn ok_round_trips(a in any::<u64>(), id in any::<u64>(), status in any::<u16>(), w in any::<u16>()) {
        let ok = OkInfo { affected_rows: a, last_insert_id: id, status, warnings: w };
        let mut out = BytesMut::new();
        packets::write_ok(&mut out, 1, &ok);
        let (len, seq) = frame::peek_packet(&out, usize::MAX).expect("frame").expect("whole");
        prop_assert_eq!((len + frame::HEADER_LEN, seq), (out.len(), 1));
        prop_assert_eq!(packets::parse_ok(&out[frame::HEADER_LEN..]), Ok(ok));
    }

    #[test]
    fn err_round_trips(code in any::<u16>(), msg in "[ -~]{0,200}") {
        let mut out = BytesMut::new();
        packets::write_err(&mut out, 1, code, "42S02", &msg);
        let e = packets::parse_err(&out[frame::HEADER_LEN..]).expect("err");
        prop_assert_eq!((e.code, e.sqlstate.as_str(), e.message.as_str()), (code, "42S02", msg.as_str()));
    }

    #[test]
    fn commands_round_trip_through_framing(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5)) {
        let mut buf = BytesMut::new();
        for p in &payloads {
            frame::write_packet(&mut buf, 0, p);
        }
        for p in &payloads {
            let got = frame::take_command(&mut buf, 1 << 20).expect("valid").expect("whole");
            prop_assert_eq!(&got[..], &p[..]);
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), caps in any::<u32>()) {
        let _ = frame::peek_packet(&bytes, 1 << 20);
        let _ = packets::parse_ok(&bytes);
        let _ = packets::parse_err(&bytes);
        let _ = packets::eof_status(&bytes);
        let _ = packets::parse_greeting(&bytes);
        let _ = packets::parse_client_hello(&bytes);
        let _ = packets::parse_auth_switch(&bytes);
        let _ = packets::parse_change_user(&bytes, caps);
        let _ = stmt::parse_prepare_ok(&bytes);
        let _ = stmt::execute_param_types(&bytes, usize::from(caps as u8));
        let _ = stmt::execute_with_types(&bytes, 2, b"\x03\x00\x03\x00");
        let _ = crate::sql_effects::classify(&bytes);
        let _ = crate::sql_effects::kill_target(&bytes);
        let _ = crate::sql_effects::rewrite_connection_id(&bytes, 7);
    }

    #[test]
    fn scanner_never_panics(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20), which in 0usize..6) {
        let expect = [Expect::Status, Expect::Results, Expect::Fetch, Expect::Prepare, Expect::FieldList, Expect::AnyOne][which];
        let mut s = ResponseScanner::default();
        s.start(expect);
        for p in &packets {
            if s.on_packet(p, p.len()).is_err() {
                break;
            }
        }
    }
}

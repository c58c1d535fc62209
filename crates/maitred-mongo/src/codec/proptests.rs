//! Property tests: encode/parse round trips, and no panic on arbitrary bytes.

use super::header::{decode_frame, patch_length};
use super::{compressed, legacy, op_msg};
use bson::RawDocumentBuf;
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

fn doc(fields: &[(String, i64)]) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    for (k, v) in fields {
        d.append(k.as_str(), *v);
    }
    d
}

proptest! {
    #[test]
    fn op_msg_round_trips(
        body in proptest::collection::vec(("[a-z]{1,8}", any::<i64>()), 0..6),
        seq in proptest::collection::vec(proptest::collection::vec(("[a-z]{1,8}", any::<i64>()), 0..4), 0..5),
        more in any::<bool>(),
        exhaust in any::<bool>(),
        checksum in any::<bool>(),
    ) {
        let flags = if more { op_msg::MORE_TO_COME } else { 0 }
            | if exhaust { op_msg::EXHAUST_ALLOWED } else { 0 };
        let body = doc(&body);
        let mut b = BytesMut::new();
        op_msg::encode(&mut b, 1, 2, flags, body.as_bytes());
        let docs: Vec<RawDocumentBuf> = seq.iter().map(|f| doc(f)).collect();
        if !docs.is_empty() {
            b.put_u8(1);
            let size = 4 + 5 + docs.iter().map(|d| d.as_bytes().len()).sum::<usize>();
            b.put_i32_le(size as i32);
            b.extend_from_slice(b"docs\0");
            for d in &docs {
                b.extend_from_slice(d.as_bytes());
            }
            patch_length(&mut b, 0);
        }
        if checksum {
            op_msg::add_checksum(&mut b);
        }
        let m = op_msg::parse(&b).expect("round trip");
        prop_assert_eq!(m.body.as_bytes(), body.as_bytes());
        prop_assert_eq!(m.more_to_come(), more);
        prop_assert_eq!(m.exhaust_allowed(), exhaust);
        prop_assert_eq!(m.sequences.len(), usize::from(!docs.is_empty()));
        if let Some((_, got)) = m.sequences.first() {
            prop_assert_eq!(got.len(), docs.len());
        }
        let mut z = BytesMut::new();
        compressed::compress(&b, compressed::Compressor::Snappy, &mut z).expect("compress");
        let back = compressed::decompress(&z, 1 << 20).expect("decompress");
        prop_assert_eq!(&back[..], &b[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut b = BytesMut::from(&bytes[..]);
        if let Ok(Some((_, msg))) = decode_frame(&mut b, 1 << 16) {
            let _ = op_msg::parse(&msg);
            let _ = legacy::parse_query(&msg);
            let _ = compressed::decompress(&msg, 1 << 16);
        }
        let _ = op_msg::parse(&bytes);
        let _ = legacy::parse_query(&bytes);
        let _ = compressed::decompress(&bytes, 1 << 16);
    }
}

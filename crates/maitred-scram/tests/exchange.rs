//! Whole exchanges through the public API: the RFC test vectors, refusals, unknown users.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use maitred_scram::client::{client_final, parse_server_first, signature_matches};
use maitred_scram::{mock, Hash, ScramError, ScramKeys, ScramServer};

/// One RFC example: user "user", password "pencil".
struct Vector {
    hash: Hash,
    client_first: &'static str,
    server_nonce: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

/// RFC 5802 section 5.
const RFC5802: Vector = Vector {
    hash: Hash::Sha1,
    client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: "3rfcNHYJY1ZVvWVs7j",
    server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final:
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

/// RFC 7677 section 3.
const RFC7677: Vector = Vector {
    hash: Hash::Sha256,
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/// Plays both sides of `v` and checks every message against the RFC's.
fn run(v: &Vector) {
    // The server side: keys derived from the password with the RFC's salt.
    let attrs = parse_server_first(v.server_first.as_bytes()).expect("server-first");
    let salt = B64.decode(attrs.salt.expect("s=")).expect("salt");
    let (keys, client_key) = ScramKeys::derive_with_client_key(v.hash, b"pencil", salt, 4096);
    let (server, first) =
        ScramServer::start(keys.clone(), v.client_first.as_bytes(), v.server_nonce)
            .expect("client-first accepted");
    assert_eq!(first, v.server_first);

    // The client side, from the same ClientKey, gives the RFC's client-final.
    let bare = v.client_first.trim_start_matches("n,,");
    let nonce = attrs.nonce.expect("r=");
    let (fin, auth_message) = client_final(v.hash, &client_key, bare, &first, nonce);
    assert_eq!(fin, v.client_final);

    // The server accepts it, gives the RFC's server-final and recovers the ClientKey.
    let (server_final, revealed) = server
        .finish_revealing_client_key(fin.as_bytes())
        .expect("proof accepted");
    assert_eq!(server_final, v.server_final);
    assert_eq!(revealed, client_key);
    let signature = B64
        .decode(server_final.trim_start_matches("v="))
        .expect("b64");
    assert!(signature_matches(
        &keys.server_signature(&auth_message),
        &signature
    ));
}

#[test]
fn rfc5802_sha1_vector() {
    run(&RFC5802);
}

#[test]
fn rfc7677_sha256_vector() {
    run(&RFC7677);
}

/// The RFC 7677 exchange started, its client-final with `edit` applied.
fn finish_edited(edit: impl Fn(&str) -> String) -> Result<String, ScramError> {
    let v = RFC7677;
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
    let keys = ScramKeys::derive_with_salt(v.hash, b"pencil", salt, 4096);
    let (server, _) = ScramServer::start(keys, v.client_first.as_bytes(), v.server_nonce)?;
    server.finish(edit(v.client_final).as_bytes())
}

#[test]
fn refuses_malformed_and_mismatched_client_final() {
    let bad = ScramError::Malformed;
    assert_eq!(finish_edited(|m| m.to_owned()).map(|_| ()), Ok(()));
    let drop_attr = |name: &'static str| {
        move |m: &str| {
            m.split(',')
                .filter(|a| !a.starts_with(name))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    assert_eq!(finish_edited(drop_attr("p=")), Err(bad("missing proof")));
    assert_eq!(
        finish_edited(drop_attr("c=")),
        Err(bad("missing channel binding"))
    );
    assert_eq!(
        finish_edited(drop_attr("r=")),
        Err(ScramError::NonceMismatch)
    );
    // Bad base64.
    assert_eq!(
        finish_edited(|m| m.replace("p=dHzb", "p=*Hzb")),
        Err(bad("proof"))
    );
    assert_eq!(
        finish_edited(|m| m.replace("c=biws", "c=b!ws")),
        Err(ScramError::ChannelBindingUnsupported)
    );
    // Channel binding data the server did not agree to ("p=tls-unique,," in base64).
    assert_eq!(
        finish_edited(|m| m.replace("c=biws", "c=cD10bHMtdW5pcXVlLCw=")),
        Err(ScramError::ChannelBindingUnsupported)
    );
    // The nonce must be the client's followed by the server's.
    assert_eq!(
        finish_edited(|m| m.replace("r=rOpr", "r=xOpr")),
        Err(ScramError::NonceMismatch)
    );
    assert_eq!(
        finish_edited(|m| m.replace("k0,p=", ",p=")),
        Err(ScramError::NonceMismatch)
    );
    // A proof of the right length that is not the password's.
    assert_eq!(
        finish_edited(|m| m.replace("p=dHzb", "p=dHzc")),
        Err(ScramError::WrongProof)
    );
    assert_eq!(
        finish_edited(|m| m.replace("AndVQ=", "And")),
        Err(bad("proof"))
    );
}

#[test]
fn refuses_malformed_client_first() {
    let keys = ScramKeys::derive(Hash::Sha1, b"pw", 2);
    let start = |m: &str| ScramServer::start(keys.clone(), m.as_bytes(), "S").err();
    let bad = |m| Some(ScramError::Malformed(m));
    assert_eq!(start(""), bad("gs2 header"));
    assert_eq!(start("n,,n=user"), bad("missing nonce"));
    assert_eq!(start("n,,n=user,r=abc,m=ext"), bad("mandatory extension"));
    assert_eq!(start("m=ext,n=user,r=abc"), bad("channel binding flag"));
    assert_eq!(
        start("p=tls-unique,,n=user,r=abc"),
        Some(ScramError::ChannelBindingUnsupported)
    );
}

#[test]
fn an_unknown_user_gets_the_same_salt_each_time_and_is_refused_at_the_proof() {
    for hash in [Hash::Sha1, Hash::Sha256] {
        let first_of = |user: &str| {
            let keys = mock::unknown_user(hash, 4096, &[user]);
            let (server, first) = ScramServer::start(keys, b"n,,n=,r=abc", "XYZ").expect("start");
            (server, first)
        };
        let (server, one) = first_of("nobody");
        let (_, two) = first_of("nobody");
        let (_, other) = first_of("somebody");
        assert_eq!(one, two, "same name, same server-first");
        assert_ne!(one, other);
        assert!(one.ends_with(",i=4096"), "{one}");
        // Whatever the proof, the exchange fails where a wrong password fails.
        let (_, client_key) = ScramKeys::derive_with_client_key(hash, b"guess", vec![0; 16], 4096);
        let (fin, _) = client_final(hash, &client_key, "n=,r=abc", &one, "abcXYZ");
        assert_eq!(
            server.finish(fin.as_bytes()).err(),
            Some(ScramError::WrongProof)
        );
    }
}

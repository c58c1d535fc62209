//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677) as MongoDB uses them.
//!
//! MongoDB specifics: SCRAM-SHA-1 hashes the password first as
//! `hex(md5("<user>:mongo:<password>"))`; SCRAM-SHA-256 uses the password itself
//! (SASLprep is the identity for the ASCII passwords maitred accepts in config).
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/auth/auth.md>.

use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use rand::RngCore;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The iteration counts maitred accepts in a server's server-first message when it logs in
/// to a server. MongoDB itself refuses to be configured below 5000 and defaults to 10000
/// (SHA-1) and 15000 (SHA-256); the ceiling keeps a server, or anyone between maitred and an
/// unverified server, from making every login burn seconds of CPU.
pub const MIN_SERVER_ITERATIONS: u32 = 4096;
/// See [`MIN_SERVER_ITERATIONS`].
pub const MAX_SERVER_ITERATIONS: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha1,
    Sha256,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// MongoDB's default iteration counts.
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::Sha1 => 10_000,
            Mechanism::Sha256 => 15_000,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// The password as this mechanism feeds it to PBKDF2.
    fn prepared_password(self, user: &str, password: &str) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let digest = Md5::digest(format!("{user}:mongo:{password}").as_bytes());
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into_bytes()
            }
            Mechanism::Sha256 => password.as_bytes().to_vec(),
        }
    }

    fn salted_password(self, user: &str, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let pw = self.prepared_password(user, password);
        match self {
            Mechanism::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(&pw, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(&pw, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A user's SCRAM verifier for one mechanism (what a server stores).
#[derive(Clone)]
pub struct ScramKeys {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramKeys({}, ***)", self.mechanism.name())
    }
}

impl ScramKeys {
    /// Derives the verifier with a random salt (PBKDF2: call off the reactor or once at start).
    pub fn derive(mechanism: Mechanism, user: &str, password: &str, iterations: u32) -> ScramKeys {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive_with_salt(mechanism, user, password, salt, iterations)
    }

    pub fn derive_with_salt(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramKeys {
        let salted = mechanism.salted_password(user, password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        ScramKeys {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
        }
    }

    /// Keys nobody knows the password of: an unknown user fails at the same step. The salt
    /// is HMAC-SHA-256(process key, mechanism and user name) cut to 16 bytes (the length of
    /// the salts maitred draws for configured users) and the iteration count the mechanism's
    /// default, as for a configured user: a name asked for twice gets the same salt, so two
    /// attempts do not tell whether it exists. The key is random per process.
    pub fn unknown_user(mechanism: Mechanism, user: &str) -> ScramKeys {
        Self::unknown_user_with_key(mock_key(), mechanism, user)
    }

    fn unknown_user_with_key(key: &[u8; 32], mechanism: Mechanism, user: &str) -> ScramKeys {
        let keyed = |what: &str| {
            let input = [
                what.as_bytes(),
                b"\0",
                mechanism.name().as_bytes(),
                b"\0",
                user.as_bytes(),
            ]
            .concat();
            Mechanism::Sha256.hmac(key, &input)
        };
        let n = match mechanism {
            Mechanism::Sha1 => 20,
            Mechanism::Sha256 => 32,
        };
        ScramKeys {
            mechanism,
            salt: keyed("salt")[..16].to_vec(),
            iterations: mechanism.default_iterations(),
            // Never shown and never matched: an unknown user is refused whatever the proof.
            stored_key: keyed("stored")[..n].to_vec(),
            server_key: keyed("server")[..n].to_vec(),
        }
    }
}

/// The key of the mock salts of unknown users: random, drawn once per process, kept in memory.
fn mock_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        key
    })
}

/// The user name in a client-first message (`n=`), with `=2C` / `=3D` decoded.
pub fn client_first_user(client_first: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(client_first)
        .map_err(|_| AuthError::MalformedScram("client-first is not UTF-8"))?;
    let bare = bare_of(text)?.1;
    for attr in bare.split(',') {
        if let Some(n) = attr.strip_prefix("n=") {
            return Ok(n.replace("=2C", ",").replace("=3D", "="));
        }
    }
    Err(AuthError::MalformedScram("missing user name"))
}

fn bare_of(text: &str) -> Result<(&str, &str), AuthError> {
    let (flag, rest) = text
        .split_once(',')
        .ok_or(AuthError::MalformedScram("gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(AuthError::ChannelBindingUnsupported),
        _ => return Err(AuthError::MalformedScram("channel binding flag")),
    }
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or(AuthError::MalformedScram("gs2 header"))?;
    Ok((&text[..text.len() - bare.len()], bare))
}

/// Server side of an exchange after the server-first message was produced.
#[derive(Debug)]
pub struct ScramServer {
    keys: ScramKeys,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Reads client-first, returns the exchange and the server-first message to send.
    pub fn start(keys: ScramKeys, client_first: &[u8]) -> Result<(ScramServer, String), AuthError> {
        let mut server_nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        Self::start_with_nonce(keys, client_first, &B64.encode(server_nonce))
    }

    fn start_with_nonce(
        keys: ScramKeys,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, String), AuthError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| AuthError::MalformedScram("client-first is not UTF-8"))?;
        let (gs2_header, bare) = bare_of(text)?;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(r) = attr.strip_prefix("r=") {
                client_nonce = Some(r);
            } else if attr.starts_with("m=") {
                return Err(AuthError::MalformedScram("mandatory extension"));
            }
        }
        let client_nonce = client_nonce.ok_or(AuthError::MalformedScram("missing nonce"))?;
        if client_nonce.is_empty() {
            return Err(AuthError::MalformedScram("nonce"));
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        Ok((
            ScramServer {
                keys,
                gs2_header: gs2_header.to_owned(),
                client_first_bare: bare.to_owned(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Checks client-final; on success returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| AuthError::MalformedScram("client-final is not UTF-8"))?;
        let (without_proof, proof_b64) = text
            .rsplit_once(",p=")
            .ok_or(AuthError::MalformedScram("missing proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let channel = channel.ok_or(AuthError::MalformedScram("missing channel binding"))?;
        if B64.decode(channel).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(AuthError::ChannelBindingUnsupported);
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(AuthError::NonceMismatch);
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| AuthError::MalformedScram("proof"))?;
        if proof.len() != self.keys.stored_key.len() {
            return Err(AuthError::MalformedScram("proof length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let m = self.keys.mechanism;
        let signature = m.hmac(&self.keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let derived = m.hash(&client_key);
        if !bool::from(derived.ct_eq(&self.keys.stored_key)) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = m.hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Client side: maitred logging in to the server.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    user: String,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> ScramClient {
        let mut n = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut n);
        Self::with_nonce(mechanism, user, password, &B64.encode(n))
    }

    fn with_nonce(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        let escaped = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            user: user.to_owned(),
            password: password.to_owned(),
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={escaped},r={nonce}"),
            server_signature: Vec::new(),
        }
    }

    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Takes server-first, returns client-final.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, AuthError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| AuthError::MalformedScram("server-first is not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            } else if let Some(s) = attr.strip_prefix("s=") {
                salt = B64.decode(s).ok();
            } else if let Some(i) = attr.strip_prefix("i=") {
                iterations = Some(
                    i.parse::<u64>()
                        .map_err(|_| AuthError::MalformedScram("iteration count"))?,
                );
            }
        }
        let nonce = nonce.ok_or(AuthError::MalformedScram("server nonce"))?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err(AuthError::NonceMismatch);
        }
        let salt = salt.ok_or(AuthError::MalformedScram("salt"))?;
        let iterations = iterations.ok_or(AuthError::MalformedScram("missing iteration count"))?;
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| (MIN_SERVER_ITERATIONS..=MAX_SERVER_ITERATIONS).contains(i))
            .ok_or(AuthError::IterationCount(iterations))?;
        let m = self.mechanism;
        let salted = m.salted_password(&self.user, &self.password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{},{}", self.client_first_bare, text, without_proof);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = m.hmac(&server_key, auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks server-final (`v=...`).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| AuthError::MalformedScram("server-final is not UTF-8"))?;
        let v = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or(AuthError::MalformedScram("server-final"))?;
        let v = B64
            .decode(v)
            .map_err(|_| AuthError::MalformedScram("server signature"))?;
        if bool::from(v.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(AuthError::BadServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(m: Mechanism, server_pw: &str, client_pw: &str) -> Result<(), AuthError> {
        let keys = ScramKeys::derive(m, "user", server_pw, 4096);
        let mut c = ScramClient::new(m, "user", client_pw);
        let first = c.client_first();
        assert_eq!(client_first_user(first.as_bytes())?, "user");
        let (s, server_first) = ScramServer::start(keys, first.as_bytes())?;
        let fin = c.client_final(server_first.as_bytes())?;
        let server_final = s.finish(fin.as_bytes())?;
        c.verify(server_final.as_bytes())
    }

    #[test]
    fn unknown_users_get_a_stable_salt_per_name_shaped_like_a_known_one() {
        for m in [Mechanism::Sha1, Mechanism::Sha256] {
            let first = ScramKeys::unknown_user(m, "nobody");
            assert_eq!(first.salt, ScramKeys::unknown_user(m, "nobody").salt);
            assert_ne!(first.salt, ScramKeys::unknown_user(m, "somebody").salt);
            let known = ScramKeys::derive(m, "user", "pw", m.default_iterations());
            assert_eq!(first.salt.len(), known.salt.len());
            assert_eq!(first.iterations, known.iterations);
            assert_eq!(first.stored_key.len(), known.stored_key.len());
            let other = ScramKeys::unknown_user_with_key(&[7; 32], m, "nobody");
            assert_ne!(first.salt, other.salt, "another process, another key");
            let client_first = b"n,,n=nobody,r=abc";
            let (_, one) = ScramServer::start(first.clone(), client_first).expect("start");
            let (_, two) = ScramServer::start(ScramKeys::unknown_user(m, "nobody"), client_first)
                .expect("start");
            let salt_of = |t: &str| {
                t.split(',')
                    .find(|a| a.starts_with("s="))
                    .map(str::to_owned)
            };
            assert_eq!(salt_of(&one), salt_of(&two), "{one} / {two}");
        }
    }

    #[test]
    fn both_mechanisms_round_trip() {
        for m in [Mechanism::Sha1, Mechanism::Sha256] {
            assert_eq!(exchange(m, "pw", "pw"), Ok(()));
            assert_eq!(exchange(m, "pw", "nope"), Err(AuthError::WrongPassword));
        }
    }

    #[test]
    fn rfc7677_vector_sha256() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let keys = ScramKeys::derive_with_salt(Mechanism::Sha256, "user", "pencil", salt, 4096);
        let (server, first) = ScramServer::start_with_nonce(
            keys,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .expect("start");
        assert_eq!(
            first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("proof accepted");
        assert_eq!(fin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn mongodb_sha1_vector() {
        // From the MongoDB auth spec's SCRAM-SHA-1 example (user "user", password "pencil").
        let mut c = ScramClient::with_nonce(
            Mechanism::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .client_final(b"r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000")
            .expect("final");
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY="
        );
        c.verify(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=")
            .expect("server signature");
    }

    #[test]
    fn server_iteration_counts_are_bounded() {
        let first = |i: &str| format!("r=abcdefXYZ,s=rQ9ZY3MntBeuP3E1TDVC4w==,i={i}");
        let client = || ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "abcdef");
        assert!(client().client_final(first("15000").as_bytes()).is_ok());
        for (count, expected) in [
            ("4095", AuthError::IterationCount(4095)),
            ("1000001", AuthError::IterationCount(1_000_001)),
            ("99999999999", AuthError::IterationCount(99_999_999_999)),
            ("x", AuthError::MalformedScram("iteration count")),
        ] {
            assert_eq!(
                client().client_final(first(count).as_bytes()),
                Err(expected),
                "i={count}"
            );
        }
        let message = AuthError::IterationCount(5_000_000).to_string();
        assert!(
            message.contains("5000000") && message.contains("1000000"),
            "{message}"
        );
    }
}

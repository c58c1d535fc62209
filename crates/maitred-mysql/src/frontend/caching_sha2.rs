//! caching_sha2_password on the client leg, as a MySQL server does it: the fast path (the
//! client's scramble) for a user in the cache, full authentication otherwise — the password
//! in clear inside TLS, or RSA-encrypted on a plain connection (the client may ask for
//! maitred's public key first). A full authentication that succeeds puts the user in the
//! cache.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html>.

use super::{read_packet, write};
use crate::auth::rsa_key::RsaKeyPair;
use crate::auth::{self, sha2_cache, AuthError};
use crate::codec::frame;
use crate::codec::packets::AUTH_MORE_DATA;
use crate::error::SessionError;
use crate::pool::MysqlPool;
use crate::tls::Stream;
use bytes::BytesMut;

/// What one caching_sha2_password login needs to know.
pub(super) struct Sha2Login<'a> {
    pub pool: &'a MysqlPool,
    pub user: &'a str,
    /// The configured password of `user`, if it is a configured user.
    pub password: Option<&'a [u8]>,
    pub scramble: &'a [u8; 20],
    /// The client's first answer (a scramble, or empty for an empty password).
    pub answer: &'a [u8],
}

impl Sha2Login<'_> {
    /// Runs the exchange after the client's handshake response; `next` is the sequence id
    /// of maitred's next packet. Returns the verdict and the sequence id of the final OK/ERR.
    pub(super) async fn run(
        &self,
        stream: &mut Stream,
        buf: &mut BytesMut,
        mut next: u8,
        fast_check: impl Fn(&[u8]) -> Result<(), AuthError>,
    ) -> Result<(Result<(), AuthError>, u8), SessionError> {
        let cached = self
            .password
            .is_some_and(|pw| sha2_cache::contains(&self.pool.name, self.user, pw));
        if !self.pool.check_passwords || self.answer.is_empty() || cached {
            // Fast path: the scramble decides.
            let r = fast_check(self.answer);
            if r.is_ok() {
                let mut o = BytesMut::new();
                next = frame::write_packet(&mut o, next, &[AUTH_MORE_DATA, auth::FAST_AUTH_OK]);
                write(stream, &o).await?;
            }
            return Ok((r, next));
        }
        let mut o = BytesMut::new();
        next = frame::write_packet(&mut o, next, &[AUTH_MORE_DATA, auth::FULL_AUTH]);
        write(stream, &o).await?;
        let (s, mut packet) = read_packet(stream, buf, next).await?;
        next = s.wrapping_add(1);
        let sent = if stream.is_tls() {
            // Inside TLS: the password, NUL-terminated.
            if packet.last() == Some(&0) {
                packet.pop();
            }
            Some(packet)
        } else {
            let key = match RsaKeyPair::shared().await {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(error = %e, "cannot generate the RSA key pair for caching_sha2_password");
                    return Ok((Err(AuthError::WrongPassword), next));
                }
            };
            if packet == [auth::REQUEST_PUBLIC_KEY] {
                let mut o = BytesMut::new();
                let mut p = Vec::with_capacity(1 + key.public_pem().len());
                p.push(AUTH_MORE_DATA);
                p.extend_from_slice(key.public_pem());
                next = frame::write_packet(&mut o, next, &p);
                write(stream, &o).await?;
                let (s, p) = read_packet(stream, buf, next).await?;
                next = s.wrapping_add(1);
                packet = p;
            }
            // Anything but a ciphertext (e.g. a password in clear on a plain connection)
            // does not decrypt and is refused.
            key.decrypt_password(&packet, self.scramble)
        };
        let ok = match (sent, self.password) {
            (Some(sent), Some(pw)) => auth::password_matches(pw, &sent),
            _ => false,
        };
        if !ok {
            return Ok((Err(AuthError::WrongPassword), next));
        }
        if let Some(pw) = self.password {
            sha2_cache::insert(&self.pool.name, self.user, pw);
        }
        Ok((Ok(()), next))
    }
}

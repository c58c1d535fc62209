//! The login of a client whose user is looked up by auth_query. The secret's kind picks the
//! exchange (a SCRAM secret: SCRAM-SHA-256; an md5 hash: md5), since it is also what maitred
//! logs in to the server with; a user without a secret goes through the pool's `client_auth`
//! exchange with keys nobody has and fails like a wrong password.

use super::lookup::LookupError;
use super::user_pools::UserPoolGuard;
use super::AuthQuery;
use crate::auth::passthrough::PassthroughLogin;
use crate::auth::scram::{ScramServer, MECHANISM};
use crate::auth::secret::{unknown_user_keys, ScramKeys};
use crate::auth::{md5, AuthError};
use crate::codec::client_msgs;
use crate::codec::server_msgs as out;
use crate::error::SessionError;
use crate::frontend::{read_login_message, write};
use crate::pool::{ClientAuth, PgPool};
use crate::tls::Stream;
use bytes::BytesMut;
use std::sync::Arc;

/// A client of an auth_query user, logged in: its user's pool and its place in it.
pub type UserLogin = (Arc<PgPool>, UserPoolGuard);

/// Looks `user` up and runs the exchange. `Ok(Err(_))`: the lookup failed (the client gets
/// 08006); `Err(SessionError::Auth(_))`: wrong password or no such user (28P01).
///
/// A proof that fails against a cached secret is checked again against the secret the
/// server has now (fetched at most once per user per `cache::REFRESH_INTERVAL`): after a
/// password change, the new password works and the old one stops working from the first
/// such failure, without waiting for the cached secret to expire. The md5 answer can be
/// checked again; a SCRAM proof only if the new secret has the salt and iteration count the
/// client was sent, which a changed password has not: that client is refused, and the next
/// login is challenged with the new secret.
pub async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    client_auth: ClientAuth,
    aq: &AuthQuery,
    user: &str,
) -> Result<Result<UserLogin, LookupError>, SessionError> {
    let (secret, cached) = match aq.secret_of(user).await {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    // Only a secret that may be stale is worth fetching again; "no such user" is cached
    // briefly anyway.
    let refresh = (cached && secret.is_some()).then_some(aq);
    let scram = secret.as_ref().and_then(|c| c.scram.clone());
    let md5_hash = secret.as_ref().and_then(|c| c.md5_hash.clone());
    let login = match (scram, md5_hash) {
        (Some(keys), _) => scram_exchange(stream, buf, user, Some(keys), refresh).await?,
        (None, Some(hash)) => md5_exchange(stream, buf, user, Some(hash), refresh).await?,
        (None, None) if client_auth == ClientAuth::Md5 => {
            md5_exchange(stream, buf, user, None, None).await?
        }
        (None, None) => scram_exchange(stream, buf, user, None, None).await?,
    };
    Ok(Ok(aq.users.enter(user, login)?))
}

/// SCRAM-SHA-256 against `keys` (None: an unknown user, who fails at the proof, after the
/// same salt at every attempt, [`unknown_user_keys`]); returns the ClientKey the proof
/// revealed. With `refresh`, a failed proof is checked again against the refreshed secret.
async fn scram_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    keys: Option<ScramKeys>,
    refresh: Option<&AuthQuery>,
) -> Result<PassthroughLogin, SessionError> {
    let mut o = BytesMut::new();
    out::authentication_sasl(&mut o, &[MECHANISM]);
    write(stream, &o).await?;
    let msg = read_login_message(stream, buf).await?;
    let initial = client_msgs::sasl_initial(&msg)?;
    if initial.mechanism != MECHANISM {
        return Err(AuthError::MalformedScram("unsupported mechanism").into());
    }
    let used = keys.clone().unwrap_or_else(|| unknown_user_keys(user));
    let (server, first) = ScramServer::start(used.clone(), initial.data)?;
    o.clear();
    out::authentication_sasl_continue(&mut o, first.as_bytes());
    write(stream, &o).await?;
    let msg = read_login_message(stream, buf).await?;
    let client_final = client_msgs::password_payload(&msg);
    let (fin, client_key, keys) = match server.clone().finish_revealing_client_key(client_final) {
        Ok((fin, client_key)) => (fin, client_key, keys),
        Err(AuthError::WrongPassword) => {
            let fresh = match refresh {
                Some(aq) => aq.refresh_after_failure(user).await,
                None => None,
            };
            let fresh_keys = fresh.flatten().and_then(|c| c.scram.clone());
            let Some(again) = fresh_keys.and_then(|k| server.with_keys(k)) else {
                return Err(AuthError::WrongPassword.into());
            };
            let keys = Some(again.keys().clone());
            let (fin, client_key) = again.finish_revealing_client_key(client_final)?;
            (fin, client_key, keys)
        }
        Err(e) => return Err(e.into()),
    };
    let Some(keys) = keys else {
        return Err(AuthError::WrongPassword.into());
    };
    o.clear();
    out::authentication_sasl_final(&mut o, fin.as_bytes());
    write(stream, &o).await?;
    Ok(PassthroughLogin::Scram { client_key, keys })
}

/// The md5 challenge against `user_hash` (None: an unknown user). With `refresh`, a wrong
/// answer is checked again against the refreshed secret (the salt is maitred's own, so any
/// md5 secret of the user can check it).
async fn md5_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    user_hash: Option<String>,
    refresh: Option<&AuthQuery>,
) -> Result<PassthroughLogin, SessionError> {
    let salt: [u8; 4] = rand::random();
    let mut o = BytesMut::new();
    out::authentication_md5(&mut o, salt);
    write(stream, &o).await?;
    let msg = read_login_message(stream, buf).await?;
    let answer = client_msgs::password_text(&msg)?;
    if let Some(hash) = user_hash.filter(|h| md5::verify(h, salt, answer)) {
        return Ok(PassthroughLogin::Md5 { user_hash: hash });
    }
    let fresh = match refresh {
        Some(aq) => aq.refresh_after_failure(user).await,
        None => None,
    };
    match fresh.flatten().and_then(|c| c.md5_hash.clone()) {
        Some(hash) if md5::verify(&hash, salt, answer) => {
            Ok(PassthroughLogin::Md5 { user_hash: hash })
        }
        _ => Err(AuthError::WrongPassword.into()),
    }
}

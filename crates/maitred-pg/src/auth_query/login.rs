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
pub async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    client_auth: ClientAuth,
    aq: &AuthQuery,
    user: &str,
) -> Result<Result<UserLogin, LookupError>, SessionError> {
    let secret = match aq.secret_of(user).await {
        Ok(secret) => secret,
        Err(e) => return Ok(Err(e)),
    };
    let scram = secret.as_ref().and_then(|c| c.scram.clone());
    let md5_hash = secret.as_ref().and_then(|c| c.md5_hash.clone());
    let login = match (scram, md5_hash) {
        (Some(keys), _) => scram_exchange(stream, buf, user, Some(keys)).await?,
        (None, Some(hash)) => md5_exchange(stream, buf, Some(hash)).await?,
        (None, None) if client_auth == ClientAuth::Md5 => md5_exchange(stream, buf, None).await?,
        (None, None) => scram_exchange(stream, buf, user, None).await?,
    };
    Ok(Ok(aq.users.enter(user, login)?))
}

/// SCRAM-SHA-256 against `keys` (None: an unknown user, who fails at the proof, after the
/// same salt at every attempt, [`unknown_user_keys`]); returns the ClientKey the proof
/// revealed.
async fn scram_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    keys: Option<ScramKeys>,
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
    let (fin, client_key) =
        server.finish_revealing_client_key(client_msgs::password_payload(&msg))?;
    if keys.is_none() {
        return Err(AuthError::WrongPassword.into());
    }
    o.clear();
    out::authentication_sasl_final(&mut o, fin.as_bytes());
    write(stream, &o).await?;
    Ok(PassthroughLogin::Scram {
        client_key,
        keys: used,
    })
}

/// The md5 challenge against `user_hash` (None: an unknown user).
async fn md5_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user_hash: Option<String>,
) -> Result<PassthroughLogin, SessionError> {
    let salt: [u8; 4] = rand::random();
    let mut o = BytesMut::new();
    out::authentication_md5(&mut o, salt);
    write(stream, &o).await?;
    let msg = read_login_message(stream, buf).await?;
    let answer = client_msgs::password_text(&msg)?;
    match user_hash {
        Some(hash) if md5::verify(&hash, salt, answer) => {
            Ok(PassthroughLogin::Md5 { user_hash: hash })
        }
        _ => Err(AuthError::WrongPassword.into()),
    }
}

//! The login of a client whose user is looked up by auth_query. The secret's kind picks the
//! exchange (a SCRAM secret: SCRAM-SHA-256; an md5 hash: md5), since it is also what maitred
//! logs in to the server with; a user without a secret goes through the pool's `client_auth`
//! exchange with keys nobody has and fails like a wrong password.

use super::cache::Answer;
use super::lookup::LookupError;
use super::AuthQuery;
use crate::auth::passthrough::PassthroughLogin;
use crate::auth::scram::{ScramServer, MECHANISM};
use crate::auth::secret::{unknown_user_keys, ScramKeys};
use crate::auth::{md5, AuthError};
use crate::codec::client_msgs;
use crate::codec::server_msgs as out;
use crate::error::SessionError;
use crate::frontend::{read_login_message, write};
use crate::pool::ClientAuth;
use crate::tls::Stream;
use bytes::BytesMut;

/// Looks `user` up and runs the exchange; returns how maitred logs in to the server as
/// `user` (the caller enters the user's pool with it, in the pool of the client's
/// database). `Ok(Err(_))`: the lookup failed (the client gets
/// 08006); `Err(SessionError::Auth(_))`: wrong password or no such user (28P01).
///
/// A secret found in the cache is looked up again while the client answers the first
/// challenge (one round trip, so the lookup costs the login no time): after `ALTER USER
/// ... PASSWORD` the new password works and the old one is refused at once, as against the
/// server, SCRAM included (its challenge carries the secret's salt, so the secret must be
/// the server's before the proof arrives; the first message, which asks for SCRAM, needs
/// no salt). The cached secret picks the exchange, and stands in if the lookup fails.
pub async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    client_auth: ClientAuth,
    aq: &AuthQuery,
    user: &str,
) -> Result<Result<PassthroughLogin, LookupError>, SessionError> {
    let began = tokio::time::Instant::now();
    let (secret, cached) = match aq.secret_of(user).await {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    // "No such user" is cached briefly on purpose (a flood of unknown names), and a secret
    // just fetched is fresh.
    let revalidate = (cached && secret.is_some()).then_some(Revalidate { aq, began });
    let scram = secret.as_ref().and_then(|c| c.scram.clone());
    let md5_hash = secret.as_ref().and_then(|c| c.md5_hash.clone());
    let login = match (scram, md5_hash) {
        (Some(keys), _) => scram_exchange(stream, buf, user, Some(keys), revalidate).await?,
        (None, Some(hash)) => md5_exchange(stream, buf, user, Some(hash), revalidate).await?,
        (None, None) if client_auth == ClientAuth::Md5 => {
            md5_exchange(stream, buf, user, None, None).await?
        }
        (None, None) => scram_exchange(stream, buf, user, None, None).await?,
    };
    Ok(Ok(login))
}

/// A cached secret to check with the server during the login.
#[derive(Clone, Copy)]
struct Revalidate<'a> {
    aq: &'a AuthQuery,
    began: tokio::time::Instant,
}

/// Reads the client's next login message while `revalidate` looks the secret up again.
/// The second value: the server's answer now (`None`: not looked up, or the lookup failed).
async fn read_while_revalidating(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    revalidate: Option<Revalidate<'_>>,
) -> Result<(BytesMut, Option<Answer>), SessionError> {
    let lookup = async {
        match revalidate {
            Some(r) => r.aq.revalidate(user, r.began).await,
            None => None,
        }
    };
    let (msg, fresh) = tokio::join!(read_login_message(stream, buf), lookup);
    Ok((msg?, fresh))
}

/// SCRAM-SHA-256 against `keys` (None: an unknown user, who fails at the proof, after the
/// same salt at every attempt, [`unknown_user_keys`]); returns the ClientKey the proof
/// revealed. With `revalidate`, the keys are the server's by the time the salt is sent.
async fn scram_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    keys: Option<ScramKeys>,
    revalidate: Option<Revalidate<'_>>,
) -> Result<PassthroughLogin, SessionError> {
    let mut o = BytesMut::new();
    out::authentication_sasl(&mut o, &[MECHANISM]);
    write(stream, &o).await?;
    let (msg, fresh) = read_while_revalidating(stream, buf, user, revalidate).await?;
    // The server's secret now: no longer SCRAM (or no user) fails like a wrong password.
    let keys = match fresh {
        Some(answer) => answer.and_then(|c| c.scram.clone()),
        None => keys,
    };
    let initial = client_msgs::sasl_initial(&msg)?;
    if initial.mechanism != MECHANISM {
        return Err(AuthError::MalformedScram("unsupported mechanism").into());
    }
    let used = keys.clone().unwrap_or_else(|| unknown_user_keys(user));
    let (server, first) = ScramServer::start(used, initial.data)?;
    o.clear();
    out::authentication_sasl_continue(&mut o, first.as_bytes());
    write(stream, &o).await?;
    let msg = read_login_message(stream, buf).await?;
    let client_final = client_msgs::password_payload(&msg);
    let (fin, client_key) = server.finish_revealing_client_key(client_final)?;
    let Some(keys) = keys else {
        return Err(AuthError::WrongPassword.into());
    };
    o.clear();
    out::authentication_sasl_final(&mut o, fin.as_bytes());
    write(stream, &o).await?;
    Ok(PassthroughLogin::Scram { client_key, keys })
}

/// The md5 challenge against `user_hash` (None: an unknown user). With `revalidate`, the
/// answer is checked against the server's secret now.
async fn md5_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    user_hash: Option<String>,
    revalidate: Option<Revalidate<'_>>,
) -> Result<PassthroughLogin, SessionError> {
    let salt: [u8; 4] = rand::random();
    let mut o = BytesMut::new();
    out::authentication_md5(&mut o, salt);
    write(stream, &o).await?;
    let (msg, fresh) = read_while_revalidating(stream, buf, user, revalidate).await?;
    let user_hash = match fresh {
        Some(answer) => answer.and_then(|c| c.md5_hash.clone()),
        None => user_hash,
    };
    let answer = client_msgs::password_text(&msg)?;
    match user_hash {
        Some(hash) if md5::verify(&hash, salt, answer) => {
            Ok(PassthroughLogin::Md5 { user_hash: hash })
        }
        _ => Err(AuthError::WrongPassword.into()),
    }
}

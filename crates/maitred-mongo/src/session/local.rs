//! What maitred answers itself: hello and isMaster (with the server's facts, learned once
//! per pool), SASL steps, `logout`, and everything an unauthenticated client may send.
//! Every other OP_MSG goes on to [`Session::forward`].

use super::{ReplyKind, Session};
use crate::backend::ServerInfo;
use crate::codec::compressed::Compressor;
use crate::codec::legacy::parse_query;
use crate::codec::{op_msg, Header};
use crate::error::SessionError;
use crate::errors_to_client::{checkout_error, code, error_doc, unauthorized};
use crate::hello;
use bson::{RawDocument, RawDocumentBuf};
use bytes::BytesMut;

/// Commands answered (`{ok: 1}`, by maitred itself, never forwarded) before
/// authentication, besides the handshake and SASL ones: what current MongoDB servers
/// allow unauthenticated. `buildInfo` (the server's version and build) needs
/// authentication on MongoDB 7+, and `getnonce` is gone since 6.0, so both get 13
/// Unauthorized like every other command.
const ANSWERED_BEFORE_AUTH: &[&str] = &["ping", "endSessions"];

impl Session {
    pub(super) async fn on_msg(&mut self, h: Header, msg: BytesMut) -> Result<(), SessionError> {
        let parsed = op_msg::parse(&msg)?;
        let name = parsed
            .command_name()
            .ok_or(crate::codec::CodecError::Malformed("OP_MSG: empty command"))?;
        let silent = parsed.more_to_come();
        let local = if let Some(legacy) = hello::hello_kind(name) {
            if let Some(wait) = hello::await_time(parsed.body).filter(|_| !silent) {
                let exhaust = parsed.flags & op_msg::EXHAUST_ALLOWED != 0;
                let body = parsed.body.to_raw_document_buf();
                return self.awaitable_hello(h, &body, legacy, wait, exhaust).await;
            }
            Some(self.hello(parsed.body, legacy).await)
        } else if name == "saslStart" {
            Some(self.sasl_start(parsed.body))
        } else if name == "saslContinue" {
            Some(self.sasl_continue(parsed.body))
        } else if name == "logout" {
            // Never forwarded: it would log the shared server connection out.
            let was_authenticated = self.authenticated;
            self.authenticated = !self.pool.requires_auth();
            self.user = None;
            if was_authenticated && !self.authenticated {
                // Logged out: a new login, in its own time (a client that never logged in
                // keeps its deadline, however many logouts it sends).
                self.login_deadline.restart(self.pool.limits.login_timeout);
            }
            Some(hello::ok())
        } else if name == "authenticate" {
            Some(error_doc(
                334,
                "MechanismUnavailable",
                "maitred: authenticate (MONGODB-CR, X.509) is not supported; use SCRAM-SHA-256 or SCRAM-SHA-1",
                &[],
            ))
        } else if !self.authenticated {
            // Nothing before authentication reaches a server connection.
            if ANSWERED_BEFORE_AUTH.contains(&name) {
                Some(hello::ok())
            } else {
                Some(unauthorized(name))
            }
        } else {
            None
        };
        match local {
            Some(doc) => {
                if !silent {
                    self.reply(ReplyKind::Msg, h.request_id, &doc).await?;
                }
                Ok(())
            }
            None => {
                let route = crate::relay::Route::of(name, parsed.body, parsed.flags);
                drop(parsed);
                self.forward(h, msg, route).await
            }
        }
    }

    pub(super) async fn on_query(&mut self, h: Header, msg: &[u8]) -> Result<(), SessionError> {
        let q = parse_query(msg)?;
        let mut body = q.query;
        if let Ok(inner) = body.get_document("$query") {
            body = inner;
        }
        let name = body
            .iter()
            .next()
            .and_then(|e| e.ok())
            .map(|(k, _)| k)
            .unwrap_or_default();
        let doc = if !q.is_command() {
            error_doc(
                code::UNSUPPORTED_OP_QUERY,
                "UnsupportedOpQueryCommand",
                "maitred: legacy OP_QUERY reads are not supported; use OP_MSG",
                &[],
            )
        } else if let Some(legacy) = hello::hello_kind(name) {
            self.hello(body, legacy).await
        } else if name == "saslStart" {
            self.sasl_start(body)
        } else if name == "saslContinue" {
            self.sasl_continue(body)
        } else {
            error_doc(
                code::UNSUPPORTED_OP_QUERY,
                "UnsupportedOpQueryCommand",
                &format!(
                    "maitred: command {name} over legacy OP_QUERY is not supported; use OP_MSG"
                ),
                &[],
            )
        };
        self.reply(ReplyKind::Legacy, h.request_id, &doc).await
    }

    /// The server's hello facts; opens a server connection to learn them the first time
    /// (once in the pool's life, whoever asks: drivers' monitoring connections never
    /// authenticate, and their hellos need these facts). The connection is not used for the
    /// client's request and stays in the pool.
    async fn server_info(&self) -> Result<ServerInfo, RawDocumentBuf> {
        if let Some(info) = self.pool.pool.manager().server_info() {
            return Ok(info);
        }
        match self.pool.pool.checkout().await {
            Ok(_lease) => self.pool.pool.manager().server_info().ok_or_else(hello::ok),
            Err(e) => Err(checkout_error(&e, crate::relay::RetryKind::Other)),
        }
    }

    pub(super) async fn hello(&mut self, body: &RawDocument, legacy: bool) -> RawDocumentBuf {
        let info = match self.server_info().await {
            Ok(info) => info,
            Err(err) => return err,
        };
        let mut d = hello::hello_reply(body, legacy, &info, self.connection_id);
        if let Ok(mechs) = body.get_str("saslSupportedMechs") {
            let user = mechs.split_once('.').map(|(_, u)| u).unwrap_or(mechs);
            if self.pool.user(user).is_some() {
                d.append("saslSupportedMechs", hello::mechanisms());
            }
        }
        if let Ok(list) = body.get_array("compression") {
            self.compressors = list
                .into_iter()
                .filter_map(|v| v.ok().and_then(|v| v.as_str()))
                .filter_map(Compressor::from_name)
                .collect();
            if !self.compressors.is_empty() {
                let mut a = bson::RawArrayBuf::new();
                for c in &self.compressors {
                    a.push(c.name());
                }
                d.append("compression", a);
            }
        }
        if let Ok(spec) = body.get_document("speculativeAuthenticate") {
            let first = self.sasl_start(spec);
            tracing::debug!(
                ok = crate::backend::is_ok(&first),
                "speculative authentication in hello"
            );
            if crate::backend::is_ok(&first) {
                let mut s = RawDocumentBuf::new();
                for (k, v) in first.iter().filter_map(|e| e.ok()) {
                    if k != "ok" {
                        s.append(k, v.to_raw_bson());
                    }
                }
                d.append("speculativeAuthenticate", s);
            }
        }
        hello::finish(d)
    }
}

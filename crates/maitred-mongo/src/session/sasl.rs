//! Client authentication: SCRAM-SHA-256 and SCRAM-SHA-1 conversations (`saslStart`,
//! `saslContinue`, also the first step carried in hello) against the pool's users.

use super::Session;
use crate::auth::scram::{client_first_user, unknown_user_keys, Mechanism, ScramServer};
use crate::errors_to_client::{auth_failed, code, error_doc};
use bson::{rawdoc, RawDocument, RawDocumentBuf};
use std::sync::atomic::Ordering;

/// A SASL conversation in progress.
pub(super) struct Conversation {
    server: ScramServer,
    known_user: bool,
    user: String,
}

impl Session {
    pub(super) fn sasl_start(&mut self, body: &RawDocument) -> RawDocumentBuf {
        if !self.pool.requires_auth() {
            return error_doc(
                code::AUTHENTICATION_FAILED,
                "AuthenticationFailed",
                "maitred: this pool takes no client authentication; connect without credentials",
                &[],
            );
        }
        let mech = body.get_str("mechanism").unwrap_or_default();
        let Some(mechanism) = Mechanism::from_name(mech) else {
            return error_doc(
                334,
                "MechanismUnavailable",
                &format!("Received authentication for mechanism {mech} which is unknown or not enabled; maitred supports SCRAM-SHA-256 and SCRAM-SHA-1"),
                &[],
            );
        };
        let Some(payload) = sasl_payload(body) else {
            return auth_failed();
        };
        let user = match client_first_user(&payload) {
            Ok(u) => u,
            Err(_) => return auth_failed(),
        };
        let known = self
            .pool
            .user(&user)
            .map(|k| k.for_mechanism(mechanism).clone());
        let keys = known
            .clone()
            .unwrap_or_else(|| unknown_user_keys(mechanism, &user));
        match ScramServer::start(keys, &payload) {
            Ok((server, first)) => {
                self.conversation = Some(Conversation {
                    server,
                    known_user: known.is_some(),
                    user,
                });
                rawdoc! {
                    "conversationId": 1,
                    "done": false,
                    "payload": binary(first.into_bytes()),
                    "ok": 1.0,
                }
            }
            Err(_) => self.failed_login(),
        }
    }

    pub(super) fn sasl_continue(&mut self, body: &RawDocument) -> RawDocumentBuf {
        let Some(conv) = self.conversation.take() else {
            if self.authenticated && self.pool.requires_auth() {
                // An empty last step after a finished exchange.
                return rawdoc! { "conversationId": 1, "done": true, "payload": binary(Vec::new()), "ok": 1.0 };
            }
            return self.failed_login();
        };
        let payload = sasl_payload(body).unwrap_or_default();
        match conv.server.finish(&payload) {
            Ok(fin) if conv.known_user => {
                self.authenticated = true;
                self.login_deadline.authenticated();
                self.user = Some(conv.user);
                rawdoc! {
                    "conversationId": 1,
                    "done": true,
                    "payload": binary(fin.into_bytes()),
                    "ok": 1.0,
                }
            }
            _ => self.failed_login(),
        }
    }

    fn failed_login(&mut self) -> RawDocumentBuf {
        self.pool
            .counters
            .login_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(pool = %self.pool.name, "client authentication failed");
        auth_failed()
    }
}

fn sasl_payload(body: &RawDocument) -> Option<Vec<u8>> {
    match body.get("payload") {
        Ok(Some(bson::RawBsonRef::Binary(b))) => Some(b.bytes.to_vec()),
        Ok(Some(bson::RawBsonRef::String(s))) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

pub(crate) fn binary(bytes: Vec<u8>) -> bson::RawBson {
    bson::RawBson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes,
    })
}

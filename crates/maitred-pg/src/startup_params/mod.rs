//! A client's startup parameters as the server takes them. The server's replies are the
//! authority: a value is shown to the client (ParameterStatus) and replayed on pooled server
//! connections the way the server spells it (`eucjp` → `EUC_JP`, `iso, dmy` → `ISO, DMY`),
//! and a value the server refuses ends the login with the server's own error, as a FATAL,
//! exactly where a direct connection would have failed.
//!
//! maitred asks the server once per distinct (name, value) and keeps the answer for a while
//! per pool ([`cache`]); a value equal to what a fresh server connection reports needs no
//! question. The question runs on a pooled connection inside a transaction that is rolled
//! back ([`lookup`]), so it leaves nothing behind.
//!
//! - [`options`]: the `options` parameter (`-c name=value`, `--name=value`).

mod cache;
mod lookup;
pub mod options;

use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::codec::startup::StartupParams;
use crate::error::BackendError;
use crate::pool::PgPool;
use bytes::BytesMut;
pub use cache::StartupValues;
use maitred_pool::CheckoutError;
use options::OptionsError;
use std::sync::Arc;
use std::time::Duration;

/// Startup parameters that are about the connection itself, not session settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];
/// How long the question to the server may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server said of one startup parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken, and shown as this value.
    Accepted(String),
    /// Refused with this error.
    Refused(Arc<Refusal>),
}

/// An error of the server, to be repeated to the client as a FATAL (as the server reports a
/// bad startup parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Refusal {
    pub fn write_fatal(&self, o: &mut BytesMut) {
        out::error_response(
            o,
            &ErrorFields {
                severity: Severity::Fatal,
                code: &self.code,
                message: &self.message,
                detail: self.detail.as_deref(),
                hint: self.hint.as_deref(),
            },
        );
    }
}

/// Why the server could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no server connection: {0}")]
    Checkout(#[from] CheckoutError<BackendError>),
    #[error("checking startup parameters with the server failed: {0}")]
    Backend(#[from] BackendError),
    #[error("checking startup parameters with the server took over {}s", LOOKUP_TIMEOUT.as_secs())]
    Timeout,
}

/// The session settings a startup packet asks for, in the order the server applies them:
/// those of `options` first, then the other parameters (`_pq_.` protocol options are
/// answered by NegotiateProtocolVersion instead).
pub fn requested(startup: &StartupParams) -> Result<Vec<(String, String)>, OptionsError> {
    let mut requested = match startup.get("options") {
        Some(o) => options::parse(o)?,
        None => Vec::new(),
    };
    requested.extend(
        startup
            .params
            .iter()
            .filter(|(k, _)| !NOT_SETTINGS.contains(&k.as_str()) && !k.starts_with("_pq_."))
            .cloned(),
    );
    Ok(requested)
}

/// Checks `params` (a startup packet's session settings, in the order the server applies
/// them) with `pool`'s server. `Ok(Ok(_))`: the parameters with the values as the server
/// spells them; `Ok(Err(_))`: the first one the server refuses.
pub async fn resolve(
    pool: &PgPool,
    params: &[(String, String)],
) -> Result<Result<Vec<(String, String)>, Arc<Refusal>>, ResolveError> {
    let reported = pool.pool.manager().server_params();
    let known = |name: &str, value: &str| -> Option<Outcome> {
        // The value a fresh connection reports needs no question.
        let fresh = reported.as_ref().and_then(|r| {
            r.iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(name) && v == value)
                .map(|(_, v)| Outcome::Accepted(v.clone()))
        });
        fresh.or_else(|| pool.startup_values.get(name, value))
    };
    // The server applies a name given twice (in `options` and again) in turn, the second
    // value relative to the first (`DateStyle`): such names are asked about in full and in
    // order, never from the cache.
    let repeated = |name: &str| {
        params
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
            > 1
    };
    let lookup_all = || -> Vec<Option<Outcome>> {
        params
            .iter()
            .map(|(k, v)| if repeated(k) { None } else { known(k, v) })
            .collect()
    };
    let mut outcomes = lookup_all();
    // Another login may be asking about the same values: wait for it, then look again.
    let _turn = if outcomes.iter().any(Option::is_none) {
        let turn = pool.startup_values.asking.lock().await;
        outcomes = lookup_all();
        Some(turn)
    } else {
        None
    };
    let unknown: Vec<usize> = (0..params.len())
        .filter(|i| outcomes[*i].is_none())
        .collect();
    if !unknown.is_empty() {
        let questions: Vec<lookup::Question<'_>> = unknown
            .iter()
            .map(|&i| lookup::Question {
                name: &params[i].0,
                value: &params[i].1,
                from_default: !params[..i]
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(&params[i].0)),
            })
            .collect();
        let encoding = reported
            .as_ref()
            .and_then(|r| r.iter().find(|(k, _)| k == "server_encoding"))
            .map_or("UTF8", |(_, v)| v.as_str());
        let mut lease = pool.pool.checkout().await?;
        let asked = lookup::ask(&mut lease, encoding, &questions);
        let answers = tokio::time::timeout(LOOKUP_TIMEOUT, asked)
            .await
            .map_err(|_| ResolveError::Timeout);
        let answers = match answers {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                lease.discard();
                return Err(e.into());
            }
            Err(e) => {
                lease.discard();
                return Err(e);
            }
        };
        drop(lease);
        for ((&i, q), answer) in unknown.iter().zip(&questions).zip(answers) {
            // An answer relative to an earlier value is not the answer for the value alone.
            if q.from_default {
                pool.startup_values.put(q.name, q.value, answer.clone());
            }
            outcomes[i] = Some(answer);
        }
    }
    let mut resolved = Vec::with_capacity(params.len());
    for ((name, _), outcome) in params.iter().zip(outcomes) {
        match outcome {
            Some(Outcome::Accepted(v)) => resolved.push((name.clone(), v)),
            Some(Outcome::Refused(r)) => return Ok(Err(r)),
            // Only after a refusal in the same question, which returned above.
            None => {}
        }
    }
    Ok(Ok(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_first_and_connection_parameters_are_not_settings() {
        let startup = StartupParams {
            minor_version: 0,
            params: [
                ("user", "u"),
                ("database", "d"),
                ("DateStyle", "postgres"),
                ("options", "--DateStyle=german -c search_path=x"),
                ("_pq_.extension", "1"),
                ("replication", "database"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let got = requested(&startup).expect("parsed");
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("DateStyle", "german"),
                ("search_path", "x"),
                ("DateStyle", "postgres")
            ]
        );
    }
}

//! Session-effect bookkeeping: what the client's statements do to its settings, kept per
//! query or batch until its ReadyForQuery says whether it ran, failed, or rolled back.

use super::{isolation, Relay};
use crate::codec::frame;
use crate::settings::Settings;
use crate::sql_effects::Effect;

/// The session effects of one simple query or extended-protocol batch, and whether it
/// failed.
pub(super) struct QueryEffects {
    pub(super) effects: Vec<Effect>,
    pub(super) failed: bool,
    /// A transaction block was open when the query was sent.
    pub(super) in_block: bool,
}

impl Relay {
    /// Applies at a Bind what the bound statement does to session state: a pin now (the
    /// Bind is refused when no place is free), SET/RESET and transaction control with the
    /// batch's Sync. False if the Bind was refused.
    pub(super) fn bind_effects(&mut self, effects: &[Effect]) -> bool {
        self.isolation.predicted(effects);
        for e in effects {
            if let Effect::Pin(reason) = e {
                if !self.pin(*reason, true) {
                    return false;
                }
            }
        }
        self.batch_effects.extend(
            effects
                .iter()
                .filter(|e| !matches!(e, Effect::Pin(_) | Effect::None))
                .cloned(),
        );
        true
    }

    /// maitred refused a message of an extended batch: the client sees the batch fail, yet
    /// what ran before the refusal is committed by the server at Sync. Settings changed that
    /// way are not the client's: the server connection is given DISCARD ALL before reuse.
    pub(super) fn abandon_batch_effects(&mut self) {
        if self.batch_effects.iter().any(changes_settings) {
            if let Some(server) = self.lease.as_deref_mut() {
                server.needs_discard = true;
            }
        }
        self.batch_effects.clear();
    }

    /// Rule 5 of `relay/isolation.rs`: a search_path that names pg_catalog lets the client
    /// shadow built-ins, so nothing it runs can be predicted.
    pub(super) fn check_search_path(&mut self) {
        if self
            .settings
            .get("search_path")
            .is_some_and(isolation::search_path_shadows_builtins)
        {
            self.isolation.shadowable_search_path();
        }
    }
}

/// The effects of a query or batch that must be settled at its ReadyForQuery: those with a
/// SET or RESET (transaction control alone is followed through the transaction status).
pub(super) fn worth_settling(effects: Vec<Effect>, in_block: bool) -> Option<QueryEffects> {
    effects
        .iter()
        .any(changes_settings)
        .then_some(QueryEffects {
            effects,
            failed: false,
            in_block,
        })
}

pub(super) fn changes_settings(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Set { .. } | Effect::Reset { .. } | Effect::ResetAll
    )
}

/// Applies what a finished query did to session settings, following its transaction
/// control: SET/RESET outside a transaction block apply at once, inside one at COMMIT, and
/// never when rolled back or when the query failed. A block ended by other means (the
/// extended protocol) keeps its settings if its last command was COMMIT. The server
/// connection's record follows what actually happened on it.
pub(super) fn settle_effects(
    done: Option<QueryEffects>,
    status: u8,
    last_was_commit: bool,
    pending: &mut Vec<Effect>,
    client: &mut Settings,
    startup: &Settings,
    server: &mut Settings,
) {
    let mut apply = |effects: &[Effect]| {
        for e in effects {
            client.apply_client(e, startup);
            server.apply_server(e);
        }
    };
    if let Some(q) = done.filter(|q| !q.failed) {
        let mut in_block = q.in_block;
        for e in q.effects {
            match e {
                Effect::Begin => in_block = true,
                Effect::Commit => {
                    apply(pending);
                    pending.clear();
                    in_block = false;
                }
                Effect::Rollback => {
                    pending.clear();
                    in_block = false;
                }
                e if in_block => pending.push(e),
                e => apply(&[e]),
            }
        }
    }
    if status == b'I' && !pending.is_empty() {
        if last_was_commit {
            apply(pending);
        }
        pending.clear();
    }
}

/// Whether a CommandComplete says every prepared statement of the session is gone.
pub(super) fn forgets_statements(msg: &[u8]) -> bool {
    let tag = frame::body(msg);
    tag.starts_with(b"DEALLOCATE ALL\0") || tag.starts_with(b"DISCARD ALL\0")
}

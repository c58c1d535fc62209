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
/// SET, RESET or NOTIFY (transaction control alone is followed through the transaction
/// status).
pub(super) fn worth_settling(effects: Vec<Effect>, in_block: bool) -> Option<QueryEffects> {
    effects
        .iter()
        .any(|e| changes_settings(e) || matches!(e, Effect::Notify { .. }))
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
/// connection's record follows what actually happened on it. Returns the NOTIFYs committed
/// now, as (channel, payload).
#[must_use]
pub(super) fn settle_effects(
    done: Option<QueryEffects>,
    status: u8,
    last_was_commit: bool,
    pending: &mut Vec<Effect>,
    client: &mut Settings,
    startup: &Settings,
    server: &mut Settings,
) -> Vec<(String, String)> {
    let mut notified = Vec::new();
    let mut apply = |effects: &[Effect]| {
        for e in effects {
            if let Effect::Notify { channel, payload } = e {
                notified.push((channel.clone(), payload.clone()));
            }
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
    notified
}

/// Whether a CommandComplete says every prepared statement of the session is gone.
pub(super) fn forgets_statements(msg: &[u8]) -> bool {
    let tag = frame::body(msg);
    tag.starts_with(b"DEALLOCATE ALL\0") || tag.starts_with(b"DISCARD ALL\0")
}

#[cfg(test)]
mod tests {
    //! docs/postgres.md: "Transactions are respected: a SET inside a block that rolls back
    //! does not stick; one that commits does; a query or extended-protocol batch that fails
    //! changes nothing. RESET x returns to the client's startup value."
    use super::*;
    use crate::sql_effects::effects;

    struct Session {
        client: Settings,
        server: Settings,
        startup: Settings,
        pending: Vec<Effect>,
    }

    impl Session {
        fn new() -> Session {
            let mut startup = Settings::default();
            startup.set("application_name", "'startup'");
            Session {
                client: startup.clone(),
                server: Settings::default(),
                startup,
                pending: Vec::new(),
            }
        }

        /// `sql` ran (or `failed`) from status `in_block`, ending with status `status`;
        /// the NOTIFYs committed by it.
        fn ran(
            &mut self,
            sql: &str,
            in_block: bool,
            failed: bool,
            status: u8,
            commit: bool,
        ) -> Vec<(String, String)> {
            let done = worth_settling(effects(sql), in_block).map(|mut q| {
                q.failed = failed;
                q
            });
            settle_effects(
                done,
                status,
                commit,
                &mut self.pending,
                &mut self.client,
                &self.startup,
                &mut self.server,
            )
        }
    }

    #[test]
    fn a_set_outside_a_block_is_followed_at_once() {
        let mut s = Session::new();
        s.ran("SET search_path TO app", false, false, b'I', false);
        assert_eq!(s.client.get("search_path"), Some("app"));
        assert_eq!(s.server.get("search_path"), Some("app"));
    }

    #[test]
    fn a_set_in_a_block_that_commits_sticks() {
        let mut s = Session::new();
        s.ran(
            "BEGIN; SET search_path TO app; COMMIT",
            false,
            false,
            b'I',
            true,
        );
        assert_eq!(s.client.get("search_path"), Some("app"));
        // Across queries: kept pending until the block's end.
        let mut s = Session::new();
        s.ran("BEGIN", false, false, b'T', false);
        s.ran("SET search_path TO app", true, false, b'T', false);
        assert_eq!(s.client.get("search_path"), None, "not before COMMIT");
        s.ran("COMMIT", true, false, b'I', true);
        assert_eq!(s.client.get("search_path"), Some("app"));
    }

    #[test]
    fn a_set_in_a_block_that_rolls_back_does_not_stick() {
        let mut s = Session::new();
        s.ran(
            "BEGIN; SET search_path TO app; ROLLBACK",
            false,
            false,
            b'I',
            false,
        );
        assert_eq!(s.client.get("search_path"), None);
        let mut s = Session::new();
        s.ran("SET search_path TO app", true, false, b'T', false);
        s.ran("ROLLBACK", true, false, b'I', false);
        assert_eq!(s.client.get("search_path"), None);
        assert!(s.pending.is_empty());
    }

    #[test]
    fn a_block_ended_another_way_keeps_its_settings_only_after_commit() {
        let mut s = Session::new();
        s.ran("SET search_path TO app", true, false, b'T', false);
        s.ran("SELECT 1", true, false, b'I', true);
        assert_eq!(
            s.client.get("search_path"),
            Some("app"),
            "last command COMMIT"
        );
        let mut s = Session::new();
        s.ran("SET search_path TO app", true, false, b'T', false);
        s.ran("SELECT 1", true, false, b'I', false);
        assert_eq!(s.client.get("search_path"), None, "last command not COMMIT");
    }

    #[test]
    fn a_failed_query_changes_nothing() {
        let mut s = Session::new();
        s.ran(
            "SET search_path TO app; SELECT 1/0",
            false,
            true,
            b'I',
            false,
        );
        assert_eq!(s.client.get("search_path"), None);
        assert_eq!(s.server.get("search_path"), None);
    }

    #[test]
    fn reset_returns_to_the_startup_value_and_the_server_default() {
        let mut s = Session::new();
        s.ran("SET application_name = 'x'", false, false, b'I', false);
        assert_eq!(s.client.get("application_name"), Some("'x'"));
        s.ran("RESET application_name", false, false, b'I', false);
        assert_eq!(s.client.get("application_name"), Some("'startup'"));
        assert_eq!(s.server.get("application_name"), None);
        s.ran("SET search_path TO app", false, false, b'I', false);
        s.ran("DISCARD ALL", false, false, b'I', false);
        assert_eq!(s.client, s.startup);
    }

    #[test]
    fn only_set_and_reset_are_worth_settling() {
        assert!(worth_settling(effects("BEGIN; SELECT 1; COMMIT"), false).is_none());
        assert!(worth_settling(effects("SET LOCAL work_mem = '1MB'"), true).is_none());
        assert!(worth_settling(effects("RESET ALL"), false).is_some());
        assert!(forgets_statements(b"C\0\0\0\x10DEALLOCATE ALL\0"));
        assert!(forgets_statements(b"C\0\0\0\x0eDISCARD ALL\0"));
        assert!(!forgets_statements(b"C\0\0\0\x0fDEALLOCATE\0"));
    }

    /// docs/postgres.md, "Notifications": a NOTIFY counts as the client's own once its
    /// transaction committed, exactly as the server sends it only then.
    #[test]
    fn a_notify_is_the_clients_own_once_committed() {
        let n = |c: &str, p: &str| vec![(c.to_owned(), p.to_owned())];
        let mut s = Session::new();
        assert_eq!(
            s.ran("NOTIFY a, 'x'", false, false, b'I', false),
            n("a", "x")
        );
        assert_eq!(
            s.ran("NOTIFY a; SELECT 1/0", false, true, b'I', false),
            vec![]
        );
        assert_eq!(
            s.ran("BEGIN; NOTIFY b; ROLLBACK", false, false, b'I', false),
            vec![]
        );
        assert_eq!(
            s.ran("BEGIN; NOTIFY b; COMMIT", false, false, b'I', true),
            n("b", "")
        );
        // Across queries: only at the COMMIT.
        assert_eq!(s.ran("BEGIN", false, false, b'T', false), vec![]);
        assert_eq!(s.ran("NOTIFY c", true, false, b'T', false), vec![]);
        assert_eq!(s.ran("COMMIT", true, false, b'I', true), n("c", ""));
        assert_eq!(s.ran("BEGIN", false, false, b'T', false), vec![]);
        assert_eq!(s.ran("NOTIFY c", true, false, b'T', false), vec![]);
        assert_eq!(s.ran("SELECT 1/0", true, true, b'E', false), vec![]);
        // COMMIT of a failed block is answered ROLLBACK.
        assert_eq!(s.ran("COMMIT", true, false, b'I', false), vec![]);
        assert!(s.pending.is_empty());
    }
}

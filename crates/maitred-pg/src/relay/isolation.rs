//! Whether a leased server connection's session state is accounted for, as a state machine
//! without I/O. The relay feeds it what the client sent (the lexer's predictions) and what
//! the server answered (CommandComplete tags, ParameterStatus, the confirmation's row); it
//! says when the session must be confirmed with the server before the connection may serve
//! anyone else, and what the confirmation decided.
//!
//! Rules (docs/postgres.md, "Session state in transaction mode"):
//! 1. A statement predicted `Unknown` (DO, CALL, an unknown function, an unclassified
//!    command, ambiguous text) needs a confirmation.
//! 2. A FunctionCall message needs one.
//! 3. A Tracked tag (SET, RESET, DISCARD, PREPARE, CREATE, ...) with no predicted statement
//!    left to match it, or an unknown tag (DO, CALL, LOAD, anything new), needs one: the
//!    lexer was wrong.
//! 4. A ParameterStatus while no setting change was predicted or synced needs one.
//! 5. A client whose search_path names `pg_catalog` explicitly can shadow built-in functions
//!    and operators: every transaction of it needs one.
//! 6. The confirmation runs at the release point; predictions made while it is in flight
//!    count for the next one.
//! 7. A client that leaves while a confirmation is needed or running leaves its connection
//!    to be reset with DISCARD ALL.

use crate::confirm::{self, Report, Verdict};
use crate::sql_effects::tags::{self, TagClass};
use crate::sql_effects::{Effect, UnknownReason};

/// Why a session was confirmed with the server (the label of
/// `maitred_session_confirmations_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmCause {
    Predicted(UnknownReason),
    FunctionCallMessage,
    UnexpectedTag,
    UnexpectedParameterStatus,
    SearchPath,
}

impl ConfirmCause {
    pub const ALL: [ConfirmCause; 8] = [
        ConfirmCause::Predicted(UnknownReason::Procedure),
        ConfirmCause::Predicted(UnknownReason::Function),
        ConfirmCause::Predicted(UnknownReason::Command),
        ConfirmCause::Predicted(UnknownReason::Ambiguous),
        ConfirmCause::FunctionCallMessage,
        ConfirmCause::UnexpectedTag,
        ConfirmCause::UnexpectedParameterStatus,
        ConfirmCause::SearchPath,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmCause::Predicted(r) => r.as_str(),
            ConfirmCause::FunctionCallMessage => "function_call_message",
            ConfirmCause::UnexpectedTag => "unexpected_tag",
            ConfirmCause::UnexpectedParameterStatus => "unexpected_parameter_status",
            ConfirmCause::SearchPath => "search_path",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The isolation state of one lease.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The first reason the session's state is not accounted for, if any.
    unconfirmed: Option<ConfirmCause>,
    /// Statements sent whose Tracked tag has not come back yet.
    tracked_expected: u32,
    /// A setting change was predicted or synced: ParameterStatus is expected.
    settings_expected: bool,
    /// A confirmation is in flight, and why.
    confirming: Option<ConfirmCause>,
    /// Its row, once read.
    row: Option<Report>,
    /// It failed (ErrorResponse).
    failed: bool,
    /// Custom setting names seen in statements whose effect is unknown.
    custom_names: Vec<String>,
    /// The names the confirmation in flight asked about.
    confirming_names: Vec<String>,
}

/// At most this many custom setting names are read back by one confirmation.
const MAX_CUSTOM_NAMES: usize = 64;

impl Tracker {
    fn mark(&mut self, cause: ConfirmCause) {
        self.unconfirmed.get_or_insert(cause);
    }

    /// Rules 1 and 3: the predictions of the statements just sent.
    pub fn predicted(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Unknown(r) => self.mark(ConfirmCause::Predicted(*r)),
                Effect::Set { .. } | Effect::Reset { .. } | Effect::ResetAll => {
                    self.settings_expected = true;
                    self.tracked_expected += 1;
                }
                Effect::Tracked | Effect::Pin(_) => self.tracked_expected += 1,
                Effect::CustomNames(names) => {
                    for n in names {
                        if self.custom_names.len() < MAX_CUSTOM_NAMES
                            && !self.custom_names.contains(n)
                        {
                            self.custom_names.push(n.clone());
                        }
                    }
                }
                Effect::Begin
                | Effect::Commit
                | Effect::Rollback
                | Effect::Refused(_)
                | Effect::Notify { .. }
                | Effect::None => {}
            }
        }
    }

    /// Rule 2.
    pub fn function_call_message(&mut self) {
        self.mark(ConfirmCause::FunctionCallMessage);
    }

    /// Rule 5.
    pub fn shadowable_search_path(&mut self) {
        self.mark(ConfirmCause::SearchPath);
    }

    /// maitred itself synced settings on the connection.
    pub fn settings_synced(&mut self) {
        self.settings_expected = true;
    }

    /// Rule 3: a CommandComplete forwarded to the client.
    pub fn on_command_complete(&mut self, tag: &[u8]) {
        match tags::class(tag) {
            TagClass::Plain => {}
            TagClass::Tracked if self.tracked_expected > 0 => self.tracked_expected -= 1,
            TagClass::Tracked | TagClass::Unknown => self.mark(ConfirmCause::UnexpectedTag),
        }
    }

    /// Rule 4: a ParameterStatus that belongs to a client's request.
    pub fn on_parameter_status(&mut self) {
        if !self.settings_expected {
            self.mark(ConfirmCause::UnexpectedParameterStatus);
        }
    }

    /// Whether the release point must run a confirmation first.
    pub fn needs_confirmation(&self) -> bool {
        self.unconfirmed.is_some() && self.confirming.is_none()
    }

    pub fn is_confirming(&self) -> bool {
        self.confirming.is_some()
    }

    /// Rule 6: the confirmation is sent; what is predicted from now on counts for the next.
    /// `known_custom`: the custom settings the client is known to have, read back too.
    /// Returns the cause and the query to send.
    pub fn start_confirmation<'a>(
        &mut self,
        known_custom: impl Iterator<Item = &'a str>,
    ) -> Option<(ConfirmCause, String)> {
        let cause = self.unconfirmed.take()?;
        self.confirming = Some(cause);
        let mut names = std::mem::take(&mut self.custom_names);
        for n in known_custom {
            if n.contains('.') && names.len() < MAX_CUSTOM_NAMES && !names.iter().any(|x| x == n) {
                names.push(n.to_owned());
            }
        }
        let query = confirm::query(&names);
        self.confirming_names = names;
        self.tracked_expected = 0;
        self.settings_expected = false;
        self.row = None;
        self.failed = false;
        Some((cause, query))
    }

    /// A DataRow of the confirmation (the whole message).
    pub fn on_confirm_row(&mut self, msg: &[u8]) {
        self.row = confirm::parse_row(msg, &self.confirming_names);
        if self.row.is_none() {
            self.failed = true;
        }
    }

    pub fn on_confirm_error(&mut self) {
        self.failed = true;
    }

    /// The confirmation's ReadyForQuery: its cause and verdict.
    pub fn finish_confirmation(
        &mut self,
        login_user: Option<&str>,
    ) -> Option<(ConfirmCause, Verdict)> {
        let cause = self.confirming.take()?;
        let report = if self.failed { None } else { self.row.take() };
        Some((cause, confirm::decide(report.as_ref(), login_user)))
    }

    /// Rule 7: whether state that was never confirmed is left on the connection.
    pub fn state_unaccounted(&self) -> bool {
        self.unconfirmed.is_some() || self.confirming.is_some()
    }

    /// The lease ended (released, lost or discarded): a new one starts clean.
    pub fn lease_ended(&mut self) {
        *self = Tracker::default();
    }
}

/// Whether a search_path value (SQL text) names `pg_catalog`, so that objects earlier in
/// the path can shadow built-in functions and operators (rule 5).
pub fn search_path_shadows_builtins(value: &str) -> bool {
    value
        .as_bytes()
        .windows(10)
        .any(|w| w.eq_ignore_ascii_case(b"pg_catalog"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql_effects::{effects, PinReason};

    fn after(sql: &str) -> Tracker {
        let mut t = Tracker::default();
        t.predicted(&effects(sql));
        t
    }

    #[test]
    fn plain_traffic_needs_no_confirmation() {
        let mut t = after("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
        t.on_command_complete(b"SELECT 1\0");
        assert!(!t.needs_confirmation());
        let mut t = after("BEGIN; UPDATE t SET a = 1; COMMIT");
        for tag in [&b"BEGIN"[..], b"UPDATE 1", b"COMMIT"] {
            t.on_command_complete(tag);
        }
        assert!(!t.needs_confirmation());
    }

    #[test]
    fn rule1_unknown_predictions_need_confirmation() {
        for sql in [
            "DO $$ BEGIN EXECUTE 'SET search_path TO x'; END $$",
            "CALL p()",
            "select app.f()",
            "create table t (a int)",
            "select 'a\\'",
        ] {
            assert!(after(sql).needs_confirmation(), "{sql}");
        }
    }

    #[test]
    fn rule2_function_call_message() {
        let mut t = Tracker::default();
        t.function_call_message();
        assert!(t.needs_confirmation());
    }

    #[test]
    fn rule3_predicted_tags_pass_and_surprises_do_not() {
        let mut t = after("/* c */ SET search_path TO a");
        t.on_command_complete(b"SET\0");
        assert!(!t.needs_confirmation(), "a predicted SET");
        t.on_command_complete(b"SET\0");
        assert!(t.needs_confirmation(), "a second SET nobody predicted");
        let mut t = after("select 1");
        t.on_command_complete(b"DO");
        assert_eq!(t.unconfirmed, Some(ConfirmCause::UnexpectedTag));
        let mut t = after("create temp table t (a int)");
        t.on_command_complete(b"CREATE TABLE");
        assert!(!t.needs_confirmation(), "a predicted pin's tag");
    }

    #[test]
    fn rule4_unexpected_parameter_status() {
        let mut t = after("select 1");
        t.on_parameter_status();
        assert_eq!(t.unconfirmed, Some(ConfirmCause::UnexpectedParameterStatus));
        let mut t = after("SET application_name = 'x'");
        t.on_parameter_status();
        assert!(!t.needs_confirmation());
        let mut t = Tracker::default();
        t.settings_synced();
        t.on_parameter_status();
        assert!(
            !t.needs_confirmation(),
            "maitred's own sync reports settings"
        );
    }

    #[test]
    fn rule5_search_path_naming_pg_catalog() {
        assert!(search_path_shadows_builtins("evil, PG_Catalog"));
        assert!(search_path_shadows_builtins("'evil, pg_catalog'"));
        assert!(!search_path_shadows_builtins("tenant_42, public"));
    }

    #[test]
    fn rule6_predictions_during_a_confirmation_count_for_the_next() {
        let mut t = after("DO $$ begin end $$");
        assert_eq!(
            t.start_confirmation(std::iter::empty()).map(|(c, _)| c),
            Some(ConfirmCause::Predicted(UnknownReason::Procedure))
        );
        assert!(!t.needs_confirmation());
        t.predicted(&effects("CALL p()"));
        let mut cols = vec![None, Some("none"), Some("app")];
        cols.extend([Some("0"); 6]);
        let row = crate::confirm::data_row(&cols);
        t.on_confirm_row(&row);
        let (cause, verdict) = t.finish_confirmation(Some("app")).expect("confirming");
        assert_eq!(cause, ConfirmCause::Predicted(UnknownReason::Procedure));
        assert!(matches!(verdict, Verdict::Follow(_)));
        assert!(t.needs_confirmation(), "the CALL sent meanwhile");
    }

    #[test]
    fn custom_names_are_asked_about() {
        let mut t = after("select set_config('app.tenant', $1, false)");
        let (_, q) = t
            .start_confirmation(["app.region", "search_path"].into_iter())
            .expect("unknown function");
        assert!(q.contains("current_setting('app.tenant', true)"), "{q}");
        assert!(q.contains("current_setting('app.region', true)"), "{q}");
        assert!(!q.contains("current_setting('search_path'"), "{q}");
    }

    #[test]
    fn a_failed_confirmation_pins() {
        let mut t = after("CALL p()");
        t.start_confirmation(std::iter::empty());
        t.on_confirm_error();
        let (_, verdict) = t.finish_confirmation(Some("app")).expect("confirming");
        assert_eq!(verdict, Verdict::Pin(PinReason::Confirmed));
    }

    #[test]
    fn rule7_unaccounted_state_until_confirmed() {
        let mut t = after("CALL p()");
        assert!(t.state_unaccounted());
        t.start_confirmation(std::iter::empty());
        assert!(t.state_unaccounted(), "while the confirmation runs");
        t.lease_ended();
        assert!(!t.state_unaccounted());
    }
}

//! Which client messages maitred answers itself, as functions without I/O: while the client
//! holds no server connection (transaction and statement modes), a Sync, a Flush, a named
//! Parse and a Close of a named statement need none, and a simple Query may be one maitred
//! answers (a DEALLOCATE of the client's own statement, LISTEN/UNLISTEN); and what a
//! message gets when no server connection could be leased for it. `client_side.rs` carries
//! the answers out.

use crate::codec::client_msgs::tag;
use crate::codec::extended::{self, ParseParts, Target};
use crate::codec::CodecError;
use crate::pool::PoolMode;

/// What a client message gets while the client holds no server connection.
pub(super) enum WithoutServer<'a> {
    /// A Sync ending a batch answered here: ReadyForQuery (idle).
    ReadyForQuery,
    /// A Flush: nothing is pending.
    Nothing,
    /// A simple Query: answered here only if it is a DEALLOCATE of one of the client's
    /// statements or a LISTEN/UNLISTEN (`sql_effects::deallocate_name`,
    /// `notify::listen_command`); otherwise it needs a server.
    Query,
    /// A named Parse: recorded (or refused: a name taken, a `mtd_` name in its text) and
    /// answered ParseComplete; prepared where it first runs.
    NamedParse(ParseParts<'a>),
    /// A Close of a named statement: forgotten by the client, CloseComplete (the statement
    /// stays prepared for others).
    CloseStatement(&'a str),
    /// Everything else (session mode: everything) needs a server connection.
    Server,
}

pub(super) fn without_server(
    mode: PoolMode,
    t: u8,
    msg: &[u8],
) -> Result<WithoutServer<'_>, CodecError> {
    if mode == PoolMode::Session {
        return Ok(WithoutServer::Server);
    }
    Ok(match t {
        tag::SYNC => WithoutServer::ReadyForQuery,
        tag::FLUSH => WithoutServer::Nothing,
        tag::QUERY => WithoutServer::Query,
        tag::PARSE => {
            let parts = extended::split_parse(msg)?;
            if parts.name.is_empty() {
                WithoutServer::Server
            } else {
                WithoutServer::NamedParse(parts)
            }
        }
        tag::CLOSE => match extended::describe_or_close_target(msg)? {
            Target::Statement(name) if !name.is_empty() => WithoutServer::CloseStatement(name),
            _ => WithoutServer::Server,
        },
        _ => WithoutServer::Server,
    })
}

/// What follows the error of a message no server connection could be leased for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterRefusal {
    /// The message ends a request (Query, Sync, FunctionCall): ReadyForQuery (idle).
    ReadyForQuery,
    /// A message inside an extended-protocol batch: the rest of the batch is skipped up to
    /// its Sync, as the server does after an error.
    SkipToSync,
}

pub(super) fn after_refusal(t: u8) -> AfterRefusal {
    match t {
        tag::QUERY | tag::SYNC | tag::FUNCTION_CALL => AfterRefusal::ReadyForQuery,
        _ => AfterRefusal::SkipToSync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{listen_command, ListenCommand};
    use crate::sql_effects::{deallocate_name, refusal_of, scan_text};
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;

    fn msg(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut b = BytesMut::new();
        write(&mut b);
        b.to_vec()
    }

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        msg(|b| frontend::parse(name, sql, [], b).expect("encodes"))
    }

    /// A Bind of `stmt` to `portal`, no parameters, no result formats.
    fn bind(portal: &str, stmt: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for name in [portal, stmt] {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
        }
        body.extend_from_slice(&[0; 6]);
        let mut m = vec![tag::BIND];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn local(mode: PoolMode, m: &[u8]) -> WithoutServer<'_> {
        without_server(mode, m[0], m).expect("well formed")
    }

    #[test]
    fn sync_flush_named_parse_and_close_of_a_statement_are_answered_without_a_server() {
        for mode in [PoolMode::Transaction, PoolMode::Statement] {
            assert!(matches!(
                local(mode, &msg(frontend::sync)),
                WithoutServer::ReadyForQuery
            ));
            assert!(matches!(
                local(mode, &msg(frontend::flush)),
                WithoutServer::Nothing
            ));
            let p = parse("s1", "SELECT $1");
            match local(mode, &p) {
                WithoutServer::NamedParse(parts) => assert_eq!(parts.name, "s1"),
                _ => panic!("a named Parse is answered here"),
            }
            let close = msg(|b| frontend::close(b'S', "s1", b).expect("encodes"));
            assert!(matches!(
                local(mode, &close),
                WithoutServer::CloseStatement("s1")
            ));
            let q = msg(|b| frontend::query("SELECT 1", b).expect("encodes"));
            assert!(matches!(local(mode, &q), WithoutServer::Query));
        }
    }

    #[test]
    fn unnamed_parse_portal_close_bind_describe_and_execute_need_a_server() {
        let t = PoolMode::Transaction;
        let unnamed = parse("", "SELECT 1");
        assert!(matches!(local(t, &unnamed), WithoutServer::Server));
        for m in [
            msg(|b| frontend::close(b'P', "portal", b).expect("encodes")),
            msg(|b| frontend::close(b'S', "", b).expect("encodes")),
            msg(|b| frontend::describe(b'S', "s1", b).expect("encodes")),
            msg(|b| frontend::execute("", 0, b).expect("encodes")),
            bind("", "s1"),
        ] {
            assert!(
                matches!(local(t, &m), WithoutServer::Server),
                "{}",
                m[0] as char
            );
        }
    }

    #[test]
    fn session_mode_answers_nothing_without_a_server() {
        for m in [
            msg(frontend::sync),
            msg(frontend::flush),
            parse("s1", "SELECT 1"),
        ] {
            assert!(matches!(
                local(PoolMode::Session, &m),
                WithoutServer::Server
            ));
        }
    }

    #[test]
    fn a_malformed_parse_or_close_ends_the_session() {
        // A name without its NUL, and a Close without its kind.
        let parse = [tag::PARSE, 0, 0, 0, 6, b's', b'1'];
        assert!(without_server(PoolMode::Transaction, tag::PARSE, &parse).is_err());
        let close = [tag::CLOSE, 0, 0, 0, 4];
        assert!(without_server(PoolMode::Transaction, tag::CLOSE, &close).is_err());
    }

    #[test]
    fn queries_answered_here_are_listen_unlisten_and_deallocate() {
        assert!(matches!(listen_command("LISTEN ch"), Some(ListenCommand::Listen(c)) if c == "ch"));
        assert!(matches!(
            listen_command("unlisten ch;"),
            Some(ListenCommand::Unlisten(_))
        ));
        assert!(matches!(
            listen_command("UNLISTEN *"),
            Some(ListenCommand::UnlistenAll)
        ));
        assert!(listen_command("SELECT 1").is_none());
        assert!(
            listen_command("LISTEN a; LISTEN b").is_none(),
            "only a lone LISTEN"
        );
        assert_eq!(deallocate_name("DEALLOCATE s1").as_deref(), Some("s1"));
        assert_eq!(
            deallocate_name("deallocate prepare s1;").as_deref(),
            Some("s1")
        );
        assert!(
            deallocate_name("SELECT 1; DEALLOCATE s1").is_none(),
            "only a lone DEALLOCATE"
        );
    }

    #[test]
    fn maitred_statement_names_are_refused_in_queries_and_parse_texts() {
        for sql in [
            "PREPARE mtd_7 AS SELECT 1",
            "EXECUTE mtd_7",
            "DEALLOCATE mtd_7",
            "SELECT 1; EXECUTE MTD_7",
        ] {
            assert!(scan_text(Some(sql)).refusal().is_some(), "{sql}");
            assert!(
                refusal_of(&crate::sql_effects::effects(sql)).is_some(),
                "{sql}"
            );
        }
        for sql in [
            "SELECT 'mtd_7'",
            "PREPARE app_7 AS SELECT 1",
            "SELECT mtd_7 FROM t",
        ] {
            assert!(scan_text(Some(sql)).refusal().is_none(), "{sql}");
        }
    }

    #[test]
    fn a_refused_checkout_ends_a_request_or_skips_the_rest_of_its_batch() {
        for t in [tag::QUERY, tag::SYNC, tag::FUNCTION_CALL] {
            assert_eq!(after_refusal(t), AfterRefusal::ReadyForQuery);
        }
        for t in [
            tag::PARSE,
            tag::BIND,
            tag::DESCRIBE,
            tag::EXECUTE,
            tag::CLOSE,
            tag::FLUSH,
        ] {
            assert_eq!(after_refusal(t), AfterRefusal::SkipToSync);
        }
    }
}

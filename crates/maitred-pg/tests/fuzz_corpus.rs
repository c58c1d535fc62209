//! Replays the committed fuzz corpus of this crate's targets (see
//! `maitred_testkit::fuzz_corpus`).

use maitred_testkit::fuzz_corpus::replay;

#[test]
fn pg_client_messages_corpus() {
    replay("pg_client_messages", maitred_pg::fuzzing::client_messages);
}

#[test]
fn pg_server_messages_corpus() {
    replay("pg_server_messages", maitred_pg::fuzzing::server_messages);
}

#[test]
fn pg_scram_corpus() {
    replay("pg_scram", maitred_pg::fuzzing::scram);
}

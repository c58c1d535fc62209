//! Replays the committed fuzz corpus of this crate's targets (see
//! `maitred_testkit::fuzz_corpus`).

use maitred_testkit::fuzz_corpus::replay;

#[test]
fn mysql_client_packets_corpus() {
    replay(
        "mysql_client_packets",
        maitred_mysql::fuzzing::client_packets,
    );
}

#[test]
fn mysql_server_packets_corpus() {
    replay(
        "mysql_server_packets",
        maitred_mysql::fuzzing::server_packets,
    );
}

#[test]
fn mysql_auth_corpus() {
    replay("mysql_auth", maitred_mysql::fuzzing::auth_exchange);
}

#[test]
fn mysql_sql_lexer_corpus() {
    replay("mysql_sql_lexer", maitred_mysql::fuzzing::sql_text);
}

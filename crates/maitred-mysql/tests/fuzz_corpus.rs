//! Replays every committed fuzz corpus file of this crate's targets (fuzz/corpus/<target>/)
//! through the same functions the fuzz targets call, so a codec change that breaks on a
//! real capture or on an input the fuzzer once found fails here, without libFuzzer.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        run(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus files in {}", dir.display());
}

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

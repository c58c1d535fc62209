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

//! Replays the committed fuzz corpus of this crate's targets (see
//! `maitred_testkit::fuzz_corpus`).

use maitred_testkit::fuzz_corpus::replay;

#[test]
fn mongo_messages_corpus() {
    replay("mongo_messages", maitred_mongo::fuzzing::messages);
}

#[test]
fn mongo_scram_corpus() {
    replay("mongo_scram", maitred_mongo::fuzzing::scram);
}

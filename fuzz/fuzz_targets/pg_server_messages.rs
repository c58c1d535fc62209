#![no_main]
// Shares its body with the corpus replay test: see maitred_pg::fuzzing::server_messages.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| maitred_pg::fuzzing::server_messages(data));

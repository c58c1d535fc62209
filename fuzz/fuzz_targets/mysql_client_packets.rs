#![no_main]
// Shares its body with the corpus replay test: see maitred_mysql::fuzzing::client_packets.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| maitred_mysql::fuzzing::client_packets(data));

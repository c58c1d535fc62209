#![no_main]
// Shares its body with the corpus replay test: see maitred_mysql::fuzzing::server_packets.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| maitred_mysql::fuzzing::server_packets(data));

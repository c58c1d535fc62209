#![no_main]
// Shares its body with the corpus replay test: see maitred_mongo::fuzzing::scram.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| maitred_mongo::fuzzing::scram(data));

#![no_main]
// Shares its body with the corpus replay test: see maitred_mysql::fuzzing::sql_text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| maitred_mysql::fuzzing::sql_text(data));

//! Replays the committed fuzz corpus of a fuzz target (`fuzz/corpus/<target>/`) through the
//! function the target calls, so that a codec change that breaks on a real capture or on
//! an input the fuzzer once found fails in `cargo test`, without libFuzzer.

use std::path::PathBuf;

/// Runs `run` on every file of `fuzz/corpus/<target>/`; panics when there is none.
pub fn replay(target: &str, run: fn(&[u8])) {
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

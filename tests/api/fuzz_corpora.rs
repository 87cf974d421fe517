//! The fuzz targets' corpora (`fuzz/corpus/<target>`, grown and minimised by `scripts/fuzz`)
//! replayed through the same entry points on every test run: an input that once crashed a
//! target, once added to its corpus, keeps being tried.

use std::path::Path;

use number_management::api::fuzzing;

/// Runs `target` on every input of its corpus; answers how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let input = std::fs::read(&path).expect("a corpus input");
        let outcome = std::panic::catch_unwind(|| run(&input));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
        inputs += 1;
    }
    inputs
}

#[test]
fn the_phone_number_corpus_replays_cleanly() {
    assert!(replay("phone_number", fuzzing::phone_number) > 0);
}

#[test]
fn the_request_corpus_replays_cleanly() {
    assert!(replay("request", fuzzing::request) > 0);
}

#[test]
fn the_page_token_corpus_replays_cleanly() {
    assert!(replay("page_token", fuzzing::page_token) > 0);
}

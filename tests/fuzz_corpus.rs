//! The committed seed corpora of fuzz/ replayed with the fuzz targets' checks, so that every
//! input the fuzzers kept (findings included) stays covered by plain `cargo test`. The
//! `hostile_guest` and `capi_sequence` corpora are `arbitrary`-encoded and replay only through
//! `scripts/fuzz.sh`.

use std::path::PathBuf;

use extism::ManifestExt;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// fuzz/fuzz_targets/manifest.rs: parsing never panics; what parses round-trips through JSON.
#[test]
fn manifest_corpus_parses_or_fails_cleanly_and_round_trips() {
    let files = corpus("manifest");
    assert!(!files.is_empty());
    let mut parsed = 0;
    for (path, data) in &files {
        if let Ok(m) = <extism::Manifest as ManifestExt>::from_bytes(data) {
            let json = m.to_json().expect("parsed manifests have UTF-8 paths");
            let again = extism::Manifest::from_text(&json)
                .unwrap_or_else(|e| panic!("{}: own JSON does not parse: {e}", path.display()));
            assert_eq!(again, m, "{}", path.display());
            parsed += 1;
        }
    }
    println!("{} manifest inputs, {parsed} parsed", files.len());
}

/// fuzz/fuzz_targets/plugin_bytes.rs: creating and calling a plugin from any bytes never
/// panics.
#[test]
fn plugin_bytes_corpus_creates_and_calls_without_panics() {
    let files = corpus("plugin_bytes");
    assert!(!files.is_empty());
    let mut created = 0;
    for (path, data) in &files {
        let result = std::panic::catch_unwind(|| {
            let Ok(mut plugin) = extism::Plugin::new(&data[..], [], false) else {
                return false;
            };
            for name in ["run", "main", "_start", "count_vowels"] {
                let _ = plugin.raw_call(name, &data[..], None);
            }
            true
        });
        match result {
            Ok(true) => created += 1,
            Ok(false) => {}
            Err(_) => panic!("{}: panicked", path.display()),
        }
    }
    println!("{} plugin_bytes inputs, {created} created", files.len());
}

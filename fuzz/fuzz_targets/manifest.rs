//! Manifest parsing must never panic, whatever the bytes: it answers a manifest or an error.
#![no_main]
use extism::ManifestExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = <extism::Manifest as ManifestExt>::from_bytes(data) {
        // whatever parses must serialise and parse back to the same manifest
        let json = m.to_json().expect("parsed manifests have UTF-8 paths");
        let again = extism::Manifest::from_text(&json).expect("own JSON parses");
        assert_eq!(again, m);
    }
});

//! Manifest parsing must never panic, whatever the bytes: it answers a manifest or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = extism::Manifest::from_bytes(data) {
        // whatever parses must serialise and parse back to the same manifest
        let again = extism::Manifest::from_text(&m.to_json()).expect("own JSON parses");
        assert_eq!(again, m);
    }
});

//! Creating (and, when that works, calling) a plugin from arbitrary bytes never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut plugin) = extism::Plugin::new(data, [], false) else { return };
    for name in ["run", "main", "_start", "count_vowels"] {
        let _ = plugin.raw_call(name, data, None);
    }
});

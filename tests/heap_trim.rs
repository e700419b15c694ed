//! Freeing a burst of plugins gives their heap back to the operating system (src/heap_trim.rs):
//! without it glibc kept about 13 KiB per freed plugin resident. A test binary of its own, so
//! that no other test allocates while resident memory is measured.

mod common;

use common::{pdk, rss_kib};
use extism::{CompiledPlugin, Plugin, PluginBuilder};

#[test]
fn memory_of_a_thousand_freed_plugins_is_returned() {
    let compiled = CompiledPlugin::new(PluginBuilder::new(pdk("count_vowels"))).unwrap();
    let warm = |n: usize| {
        let plugins: Vec<Plugin> = (0..n)
            .map(|_| {
                let mut p = Plugin::new_from_compiled(&compiled).unwrap();
                let _: String = p.call("count_vowels_no_vars", "Hello, world!").unwrap();
                p
            })
            .collect();
        drop(plugins);
    };
    warm(100);
    let before = rss_kib();
    warm(1000);
    let held = rss_kib() - before;
    println!("RSS held after freeing 1000 plugins: {held} KiB");
    assert!(held < 4 * 1024, "{held} KiB still resident");
}

//! Resident memory per live plugin (issue 11's workload):
//!
//! ```sh
//! cargo run --release --example live_rss -- testdata/rust/wasm/count_vowels_debug.wasm 1000 bytes
//! ```
//!
//! Arguments: plugin, number of plugins, `bytes` (each plugin made from the bytes, as the C API's
//! `extism_plugin_new` does) or `compiled` (all made from one compiled plugin). One plugin is
//! made and called first, so compiling is not counted. Prints the resident memory per plugin
//! after creating them all and after calling `count_vowels` once on each (an export of that
//! name must exist), and what is still held after freeing them.

fn rss() -> anyhow::Result<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/statm"))?
        .parse()?;
    Ok(pages * 4096.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, n, mode] = args.as_slice() else {
        anyhow::bail!("usage: live_rss PLUGIN N bytes|compiled");
    };
    let n: usize = n.parse()?;
    let wasm = std::fs::read(path)?;
    let compiled = extism::CompiledPlugin::new(extism::PluginBuilder::new(&wasm))?;
    let new = || match mode.as_str() {
        "bytes" => extism::Plugin::new(&wasm, [], false),
        "compiled" => extism::Plugin::new_from_compiled(&compiled),
        other => anyhow::bail!("unknown mode {other}: bytes or compiled"),
    };
    let mut warm = new()?;
    warm.call::<&str, &str>("count_vowels", "Hello, world!")?;
    drop(warm);

    let kib = |bytes: f64| bytes / n as f64 / 1024.0;
    let before = rss()?;
    let mut plugins = (0..n).map(|_| new()).collect::<Result<Vec<_>, _>>()?;
    let created = rss()?;
    for p in &mut plugins {
        p.call::<&str, &str>("count_vowels", "Hello, world!")?;
    }
    let called = rss()?;
    drop(plugins);
    let freed = rss()?;
    println!(
        "{mode}: {n} plugins of {path} ({} bytes): RSS per plugin {:.1} KiB after creating, \
         {:.1} KiB after one call; {:.1} MiB held after freeing",
        wasm.len(),
        kib(created - before),
        kib(called - before),
        (freed - before) / (1 << 20) as f64
    );
    Ok(())
}

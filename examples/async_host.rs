//! An async host on tokio: one compiled plugin, many concurrent calls, and an async host
//! function that awaits (here a timer, standing in for a database query).
//!
//! `cargo run --example async_host`

use std::time::Duration;

use extism::{AsyncPlugin, Function, Manifest, PluginBuilder, UserData, Wasm, PTR};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `host_reflect` is what the host_fns test plugin imports: bytes in, bytes out.
    let lookup = Function::new_async(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin, inputs, outputs, _user_data| {
            Box::pin(async move {
                let key: String = plugin.memory_get_val(&inputs[0])?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                plugin.memory_set_val(&mut outputs[0], format!("value of {key}"))
            })
        },
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/rust/wasm/host_fns.wasm"
    );
    let manifest = Manifest::new([Wasm::file(path)]).with_timeout(Duration::from_secs(5));
    // Compiled once; each task gets its own instance.
    let compiled = PluginBuilder::new(manifest)
        .with_functions([lookup])
        // The plugin's other import, unused here: a sync host function (they work too).
        .with_function(
            "host_context",
            [],
            [PTR],
            UserData::new(()),
            |_, _, out, _| {
                out[0] = extism::Val::I64(0);
                Ok(())
            },
        )
        .compile_async()?;

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let compiled = compiled.clone();
            tokio::spawn(async move {
                let mut plugin = AsyncPlugin::new(&compiled)?;
                let out: String = plugin.call("roundtrip", format!("key{i}")).await?;
                anyhow::Ok(out)
            })
        })
        .collect();
    for task in tasks {
        println!("{}", task.await??);
    }
    Ok(())
}

//! The variables upstream reads when a `PluginBuilder` is made: `EXTISM_COREDUMP`,
//! `EXTISM_MEMDUMP` and `EXTISM_CACHE_CONFIG`, and the errors of a bad cache configuration.
//! In a file of its own because it sets process-wide variables (one test, so nothing else in
//! this process reads them meanwhile).

use extism::{Manifest, PluginBuilder, Wasm};

const TRAP: &str = r#"(module (func (export "boom") unreachable))"#;

fn boom(builder: PluginBuilder) {
    let mut plugin = builder.build().unwrap();
    assert!(plugin.call::<&str, &str>("boom", "x").is_err());
}

#[test]
fn environment_and_cache_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let manifest = || Manifest::new([Wasm::data(TRAP)]);

    std::env::set_var("EXTISM_COREDUMP", path("env.core"));
    std::env::set_var("EXTISM_MEMDUMP", path("env.mem"));
    std::fs::write(
        path("cache.toml"),
        format!(
            "[cache]\ndirectory = \"{}\"\ncleanup-interval = \"1h\"\n",
            path("cache").display()
        ),
    )
    .unwrap();
    std::env::set_var("EXTISM_CACHE_CONFIG", path("cache.toml"));
    boom(PluginBuilder::new(manifest()));
    assert!(std::fs::read(path("env.core"))
        .unwrap()
        .starts_with(b"\0asm"));
    assert!(path("env.mem").exists());
    assert_eq!(std::fs::read_dir(path("cache")).unwrap().count(), 1);

    // explicit settings win over the variables
    std::fs::remove_dir_all(path("cache")).unwrap();
    let options = extism::DebugOptions {
        coredump: None,
        memdump: None,
        ..extism::DebugOptions::default()
    };
    std::fs::remove_file(path("env.core")).unwrap();
    boom(
        PluginBuilder::new(manifest())
            .with_debug_options(options)
            .with_cache_disabled(),
    );
    assert!(!path("env.core").exists() && !path("cache").exists());

    // an empty EXTISM_CACHE_CONFIG means no cache, as upstream
    std::env::set_var("EXTISM_CACHE_CONFIG", "");
    boom(PluginBuilder::new(manifest()));
    assert!(!path("cache").exists());
    for var in ["EXTISM_COREDUMP", "EXTISM_MEMDUMP", "EXTISM_CACHE_CONFIG"] {
        std::env::remove_var(var);
    }

    // a cache configuration that cannot be used fails the build, naming the file and why
    let bad = |text: Option<&str>| {
        let file = path("bad.toml");
        match text {
            Some(t) => std::fs::write(&file, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&file);
            }
        }
        let err = PluginBuilder::new(manifest())
            .with_cache_config(&file)
            .build()
            .expect_err("a bad cache config is an error");
        let msg = format!("{err:#}");
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        msg
    };
    assert!(bad(None).contains("cannot read cache config"));
    assert!(bad(Some("[cache]\ndirectroy = \"/tmp/x\"\n")).contains("unknown key `directroy`"));
    assert!(bad(Some("[cache]\ndirectory = \"rel/dir\"\n")).contains("absolute path"));
    assert!(bad(Some("cache = 3\n")).contains("invalid cache config"));
    // `enabled = false` (older wasmtime versions' key) turns the cache off
    std::fs::write(
        path("off.toml"),
        format!(
            "[cache]\nenabled = false\ndirectory = \"{}\"\n",
            path("off").display()
        ),
    )
    .unwrap();
    boom(PluginBuilder::new(manifest()).with_cache_config(path("off.toml")));
    assert!(!path("off").exists());
}

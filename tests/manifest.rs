//! Manifest parsing and module sources (spec/manifest.md) through the public API.

mod common;

use base64::Engine as _;
use common::{pdk, testdata};
use extism::{manifest::sha256_hex, Manifest, ManifestExt, Plugin, PluginBuilder, Wasm};

const EMPTY: &str = "AGFzbQEAAAA="; // the 8-byte empty module

fn err(text: &str) -> String {
    format!("{:#}", Manifest::from_text(text).unwrap_err())
}

#[test]
fn sdk_style_json_with_nulls_is_accepted() {
    let m = Manifest::from_text(&format!(
        r#"{{"wasm":[{{"data":"{EMPTY}","name":null,"hash":null}}],
            "memory":{{"max_pages":null,"max_http_response_bytes":null,"max_var_bytes":null}},
            "config":{{"a":"b"}},"allowed_hosts":null,"allowed_paths":null,"timeout_ms":null}}"#
    ))
    .unwrap();
    assert_eq!(m.config["a"], "b");
    assert_eq!(m.max_var_bytes(), 1024 * 1024);
    assert_eq!(m.max_http_response_bytes(), 50 * 1024 * 1024);
}

#[test]
fn unknown_and_malformed_fields_are_named() {
    assert!(err(r#"{"wasm":[],"bogus":1}"#).contains("bogus"));
    assert!(err(r#"{"memory":{"max":3}}"#).contains("max"));
    assert!(err(r#"{"memory":null}"#).contains("null"));
    assert!(err(r#"{"config":{"a":1}}"#).contains("integer"));
    assert!(err(r#"{"timeout_ms":-1}"#).contains("-1"));
    assert!(err(r#"{"wasm":[{"path":"a.wasm","url":"http://x"}]}"#).contains("`path` and `url`"));
    assert!(err(r#"{"wasm":[{"path":"a.wasm","extra":1}]}"#).contains("extra"));
    assert!(err(r#"{"wasm":[{"data":"AGFzbQEAAAA"}]}"#).contains("base64"));
    assert!(
        err(r#"{"wasm":[{"data":[0,97]}]}"#).contains("wasm entry")
            || err(r#"{"wasm":[{"data":[0,97]}]}"#).contains("data")
    );
    assert!(err("{ not json").contains("Unknown manifest format"));
}

#[test]
fn toml_manifests_are_accepted() {
    let m = Manifest::from_text(&format!(
        "timeout_ms = 2500\nallowed_hosts = [\"api.example.net\"]\n\n[[wasm]]\ndata = \"{EMPTY}\"\nname = \"main\"\n\n[memory]\nmax_pages = 32\n\n[config]\ngreeting = \"Hello\"\n\n[allowed_paths]\n\"ro:./assets\" = \"/assets\"\n"
    ))
    .unwrap();
    assert_eq!(m.timeout_ms, Some(2500));
    assert_eq!(m.memory.max_pages, Some(32));
    assert_eq!(m.config["greeting"], "Hello");
    assert_eq!(
        m.allowed_paths.unwrap()["ro:./assets"].to_str(),
        Some("/assets")
    );
}

#[test]
fn bytes_are_told_apart() {
    // binary and text modules become a one-module manifest
    assert!(matches!(
        Manifest::from_bytes(b"\0asm\x01\0\0\0").unwrap().wasm[0],
        Wasm::Data { .. }
    ));
    assert!(matches!(
        Manifest::from_bytes(b"  \n(module)").unwrap().wasm[0],
        Wasm::Data { .. }
    ));
    // an empty buffer is an empty TOML document without modules
    let e = Plugin::new(b"" as &[u8], [], false).unwrap_err();
    assert_eq!(e.to_string(), "No wasm files specified in Extism manifest");
    // garbage that is not UTF-8 goes to the compiler, which says what is wrong
    assert!(Plugin::new(&[0xffu8, 0xfe, 0x00][..], [], false).is_err());
}

#[test]
fn data_can_point_into_this_process() {
    let bytes = pdk("echo");
    let json = format!(
        r#"{{"wasm":[{{"data":{{"ptr":{},"len":{}}}}}]}}"#,
        bytes.as_ptr() as usize,
        bytes.len()
    );
    let mut p = Plugin::new(json.as_bytes(), [], false).unwrap();
    assert_eq!(p.call::<_, String>("echo", "hi").unwrap(), "hi");
    let e = err(r#"{"wasm":[{"data":{"ptr":0,"len":5}}]}"#);
    assert!(e.contains("null"), "{e}");
    // a pointer to unmapped memory (as a manifest file might hold) is an error, not a crash
    for bad in [
        r#"{"ptr":16,"len":8}"#,
        r#"{"ptr":18446744073709551600,"len":64}"#,
    ] {
        let e = err(&format!(r#"{{"wasm":[{{"data":{bad}}}]}}"#));
        assert!(e.contains("cannot read `data`"), "{e}");
    }
}

#[test]
fn files_hashes_and_names() {
    let path = testdata("rust/wasm/echo.wasm");
    let hash = sha256_hex(&std::fs::read(&path).unwrap());
    let m = Manifest::new([Wasm::file(&path).with_hash(&hash)]);
    Plugin::new(&m, [], false).unwrap();

    let wrong = "0".repeat(64);
    let e = Plugin::new(
        Manifest::new([Wasm::file(&path).with_hash(&wrong)]),
        [],
        false,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Hash mismatch, found {hash} but expected {wrong}")
    );
    // upper-case hex does not match
    assert!(Plugin::new(
        Manifest::new([Wasm::file(&path).with_hash(hash.to_uppercase())]),
        [],
        false
    )
    .is_err());

    let e = Plugin::new(Manifest::new([Wasm::file("/no/such/file.wasm")]), [], false).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("Unable to load Wasm file \"/no/such/file.wasm\""),
        "{msg}"
    );

    let two_unnamed = Manifest::new([Wasm::data(pdk("echo")), Wasm::data(pdk("echo"))]);
    let e = Plugin::new(&two_unnamed, [], false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Duplicate module name found in Extism manifest: main"
    );
}

#[test]
fn manifest_round_trips_through_json() {
    let m = Manifest::new([Wasm::data(b"\0asm\x01\0\0\0".to_vec()).with_name("main")])
        .with_config_key("k", "v")
        .with_allowed_host("*.example.com")
        .with_allowed_path("ro:/tmp".into(), "/data")
        .with_timeout(std::time::Duration::from_millis(1500))
        .with_memory_max(20);
    let back = Manifest::from_text(&m.to_json().unwrap()).unwrap();
    assert_eq!(back, m);
    assert!(m
        .to_json()
        .unwrap()
        .contains(&base64::engine::general_purpose::STANDARD.encode(b"\0asm\x01\0\0\0")));
}

#[test]
fn modules_link_by_name_and_cycles_are_refused() {
    let lib = r#"(module (func (export "seven") (result i32) (i32.const 7)))"#;
    let main = r#"(module (import "lib" "seven" (func $seven (result i32)))
                          (func (export "run") (result i32) (call $seven)))"#;
    let m = Manifest::new([Wasm::data(lib).with_name("lib"), Wasm::data(main)]);
    let mut p = PluginBuilder::new(&m).build().unwrap();
    assert_eq!(p.raw_call("run", b"", None).unwrap(), 7);

    let a = r#"(module (import "b" "f" (func)) (func (export "f")))"#;
    let b = r#"(module (import "a" "f" (func)) (func (export "f")))"#;
    let m = Manifest::new([
        Wasm::data(a).with_name("a"),
        Wasm::data(b).with_name("b"),
        Wasm::data("(module)").with_name("main"),
    ]);
    let e = PluginBuilder::new(&m).compile().unwrap_err();
    assert!(e.to_string().contains("cycle: a -> b -> a"), "{e}");
}

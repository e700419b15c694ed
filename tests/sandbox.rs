//! The sandbox a host relies on (issue 7): HTTP with allowed_hosts, file system mounts, URL
//! module sources. HTTP goes only to a server on 127.0.0.1 that each test starts itself.

mod common;

use std::time::Duration;

use common::{pdk, server::Server, wat};
use extism::{manifest::sha256_hex, Manifest, ManifestExt, Plugin, PluginBuilder, Wasm};

fn http_plugin(allowed: &[&str]) -> Plugin {
    let mut m = Manifest::new([Wasm::data(wat("http"))]);
    for h in allowed {
        m = m.with_allowed_host(*h);
    }
    Plugin::new(&m, [], false).unwrap()
}

fn get(url: &str) -> String {
    format!(r#"{{"url":"{url}","headers":{{}},"method":null}}"#)
}

fn fetch(p: &mut Plugin, req: &str) -> Result<String, String> {
    p.call::<_, String>("fetch", req)
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn allowed_hosts_gate_requests() {
    let s = Server::start();
    let mut p = http_plugin(&["127.0.0.1"]);
    assert_eq!(
        fetch(&mut p, &get(&s.url("/hello"))).unwrap(),
        "hello world"
    );
    assert_eq!(p.call::<_, String>("status", "").unwrap(), "200");

    for patterns in [&["127.0.0.*"][..], &["*"], &["[0-9]*.0.0.1"]] {
        let mut p = http_plugin(patterns);
        assert_eq!(
            fetch(&mut p, &get(&s.url("/hello"))).unwrap(),
            "hello world",
            "{patterns:?}"
        );
    }
    for patterns in [&[][..], &["localhost"], &["*.0.0.2"], &["127.0.0.10"]] {
        let mut p = http_plugin(patterns);
        let err = fetch(&mut p, &get(&s.url("/hello"))).unwrap_err();
        assert!(err.contains("is not allowed"), "{patterns:?}: {err}");
        assert_eq!(p.call::<_, String>("status", "").unwrap(), "000");
    }
    // hosts are matched after normalisation and case-sensitively: "LOCALHOST" in a URL is
    // "localhost" to the matcher
    let mut p = http_plugin(&["localhost"]);
    let upper = format!("http://LOCALHOST:{}/hello", s.port);
    assert_eq!(fetch(&mut p, &get(&upper)).unwrap(), "hello world");
    // an IP literal is not a way around a name-based list
    let mut p = http_plugin(&["localhost"]);
    assert!(fetch(&mut p, &get(&s.url("/hello")))
        .unwrap_err()
        .contains("is not allowed"));
}

#[test]
fn every_redirect_hop_is_checked() {
    let s = Server::start();
    let to_allowed = s.url(&format!("/redirect?to={}", s.url("/hello")));
    let mut p = http_plugin(&["127.0.0.1"]);
    assert_eq!(fetch(&mut p, &get(&to_allowed)).unwrap(), "hello world");

    let elsewhere = format!("http://localhost:{}/hello", s.port);
    let to_other = s.url(&format!("/redirect?to={elsewhere}"));
    let before = s.seen.lock().unwrap().len();
    let err = fetch(&mut p, &get(&to_other)).unwrap_err();
    assert!(
        err.contains(&format!("HTTP request to {elsewhere} is not allowed")),
        "{err}"
    );
    // the refused hop was never requested
    assert_eq!(s.seen.lock().unwrap().len(), before + 1);
}

#[test]
fn response_bodies_are_capped() {
    let s = Server::start();
    let m = Manifest::new([Wasm::data(wat("http"))])
        .with_allowed_host("127.0.0.1")
        .with_http_response_max(100);
    let mut p = Plugin::new(&m, [], false).unwrap();
    assert_eq!(
        fetch(&mut p, &get(&s.url("/bytes/100"))).unwrap().len(),
        100
    );
    let err = fetch(&mut p, &get(&s.url("/bytes/101"))).unwrap_err();
    assert!(
        err.contains("HTTP response exceeds the configured maximum number of bytes: 100"),
        "{err}"
    );
    assert_eq!(fetch(&mut p, &get(&s.url("/bytes/0"))).unwrap(), "");
}

#[test]
fn statuses_bodies_methods_and_headers() {
    let s = Server::start();
    let mut p = http_plugin(&["127.0.0.1"]);
    assert_eq!(
        fetch(&mut p, &get(&s.url("/status/404"))).unwrap(),
        "status 404"
    );
    assert_eq!(p.call::<_, String>("status", "").unwrap(), "404");
    // the status survives into later calls until the next request
    assert_eq!(p.call::<_, String>("status", "").unwrap(), "404");

    let post = format!(
        r#"{{"url":"{}","headers":{{"X-A":"1"}},"method":"post"}}"#,
        s.url("/echo")
    );
    p.config_mut().insert("body".into(), "payload".into());
    assert_eq!(
        p.call::<_, String>("fetch_with_body", post.as_str())
            .unwrap(),
        "payload"
    );
    assert!(s
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("POST /echo") && l.ends_with("payload")));

    // response headers only when the host allowed them
    fetch(&mut p, &get(&s.url("/hello"))).unwrap();
    assert_eq!(p.call::<_, String>("headers", "").unwrap(), "");
    p.allow_http_response_headers();
    fetch(&mut p, &get(&s.url("/hello"))).unwrap();
    let headers: serde_json::Value =
        serde_json::from_str(&p.call::<_, String>("headers", "").unwrap()).unwrap();
    assert_eq!(headers["x-test"], "yes");

    let err = fetch(&mut p, r#"{"url":"not a url"}"#).unwrap_err();
    assert!(err.contains("Invalid URL"), "{err}");
    let err = fetch(&mut p, r#"{"url":"http://127.0.0.1/","extra":1}"#).unwrap_err();
    assert!(err.contains("extra"), "{err}");
}

#[test]
fn http_requests_end_at_the_call_deadline() {
    let s = Server::start();
    let m = Manifest::new([Wasm::data(wat("http"))])
        .with_allowed_host("127.0.0.1")
        .with_timeout(Duration::from_millis(300));
    let mut p = Plugin::new(&m, [], false).unwrap();
    let (err, rc) = p
        .call_get_error_code::<_, String>("fetch", get(&s.url("/slow")).as_str())
        .unwrap_err();
    assert_eq!(rc, -1, "{err:#}");
    assert!(format!("{err:#}").contains("timeout"), "{err:#}");
}

#[test]
fn url_sources_download_with_hash_checks_and_progress() {
    let s = Server::start();
    let url = s.url("/testdata/rust/wasm/count_vowels.wasm");
    let hash = sha256_hex(&pdk("count_vowels"));
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |_: u64, _: Option<u64>| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let m = Manifest::new([Wasm::url(&url).with_hash(&hash)]);
    let mut p = PluginBuilder::new(&m)
        .with_download_progress(&progress)
        .build()
        .unwrap();
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(
        p.call::<_, String>("count_vowels_no_vars", "aaa").unwrap(),
        r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#
    );
    let bad = Manifest::new([Wasm::url(&url).with_hash("0".repeat(64))]);
    assert!(Plugin::new(&bad, [], false)
        .unwrap_err()
        .to_string()
        .starts_with("Hash mismatch"));
    let missing = Manifest::new([Wasm::url(s.url("/testdata/nope.wasm"))]);
    let err = format!("{:#}", Plugin::new(&missing, [], false).unwrap_err());
    assert!(err.contains("404"), "{err}");
}

// ---- file system ----

fn fs_plugin(paths: &[(&str, &str)]) -> Result<Plugin, String> {
    let mut m = Manifest::new([Wasm::data(pdk("wasi_fs"))]);
    for (host, guest) in paths {
        m = m.with_allowed_path(host.to_string(), guest);
    }
    Plugin::new(&m, [], true).map_err(|e| format!("{e:#}"))
}

fn call(p: &mut Plugin, f: &str, input: &str) -> Result<String, String> {
    p.call::<_, String>(f, input).map_err(|e| format!("{e:#}"))
}

#[test]
fn mounted_directories_read_write_and_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi there").unwrap();
    let host = dir.path().to_str().unwrap();
    let mut p = fs_plugin(&[(host, "/data")]).unwrap();
    assert_eq!(
        call(&mut p, "read_file", "/data/hello.txt").unwrap(),
        "hi there"
    );
    assert_eq!(
        call(&mut p, "write_file", "/data/new.txt\nwritten").unwrap(),
        "ok"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "written"
    );
    assert_eq!(
        call(&mut p, "list_dir", "/data").unwrap(),
        "hello.txt\nnew.txt"
    );
    assert_eq!(call(&mut p, "remove_file", "/data/new.txt").unwrap(), "ok");
    assert!(!dir.path().join("new.txt").exists());
}

#[test]
fn read_only_mounts_refuse_every_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
    let host = format!("ro:{}", dir.path().display());
    let mut p = fs_plugin(&[(&host, "/data")]).unwrap();
    assert_eq!(call(&mut p, "read_file", "/data/hello.txt").unwrap(), "hi");
    assert!(call(&mut p, "write_file", "/data/new.txt\nx").is_err());
    assert!(call(&mut p, "write_file", "/data/hello.txt\nchanged").is_err());
    assert!(call(&mut p, "remove_file", "/data/hello.txt").is_err());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.txt")).unwrap(),
        "hi"
    );
    assert!(!dir.path().join("new.txt").exists());
}

#[test]
fn escapes_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let mount = root.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), mount.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(root.path(), mount.join("up")).unwrap();
    let mut p = fs_plugin(&[(mount.to_str().unwrap(), "/data")]).unwrap();
    let attempts = [
        "/data/../secret.txt",
        "/data/link.txt",
        "/data/up/secret.txt",
        "/data/up/",
        &format!("{}/secret.txt", root.path().display()),
        "/etc/passwd",
        "/data/./../mount/../secret.txt",
    ];
    for path in attempts {
        let r = call(&mut p, "read_file", path);
        assert!(r.is_err(), "{path} was readable: {r:?}");
        assert!(
            call(&mut p, "write_file", &format!("{path}\nowned")).is_err(),
            "{path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.path().join("secret.txt")).unwrap(),
        "secret"
    );
}

#[test]
fn a_single_file_can_be_mounted_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.toml"), "name = 1").unwrap();
    std::fs::write(dir.path().join("sibling.txt"), "hidden").unwrap();
    let file = dir.path().join("app.toml");
    let mut p = fs_plugin(&[(file.to_str().unwrap(), "/config/app.toml")]).unwrap();
    assert_eq!(
        call(&mut p, "read_file", "/config/app.toml").unwrap(),
        "name = 1"
    );
    assert_eq!(call(&mut p, "list_dir", "/config").unwrap(), "app.toml");
    assert!(call(&mut p, "read_file", "/config/sibling.txt").is_err());
    // writes reach the real file
    assert_eq!(
        call(&mut p, "write_file", "/config/app.toml\nname = 2").unwrap(),
        "ok"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "name = 2");
    let ro = format!("ro:{}", file.display());
    let mut p = fs_plugin(&[(&ro, "/config/app.toml")]).unwrap();
    assert!(call(&mut p, "write_file", "/config/app.toml\nname = 3").is_err());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "name = 2");
}

#[test]
fn missing_paths_fail_creation_and_no_mount_means_no_files() {
    let err = fs_plugin(&[("/no/such/dir", "/data")]).unwrap_err();
    assert!(err.contains("No such file or directory"), "{err}");
    let mut p = fs_plugin(&[]).unwrap();
    assert!(call(&mut p, "read_file", "/etc/passwd").is_err());
    // without WASI, allowed_paths is ignored
    let m =
        Manifest::new([Wasm::data(pdk("echo"))]).with_allowed_path("/no/such/dir".into(), "/data");
    Plugin::new(&m, [], false).unwrap();
}

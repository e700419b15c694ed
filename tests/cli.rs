//! The `extism-run` command line, run as a process: every subcommand and flag, exit statuses,
//! stdin and stdout handling, Ctrl-C, the compiled-module cache, and the committed completions
//! and man pages. Every command gets its own EXTISM_RUN_CACHE in a temporary directory.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_extism-run");

fn wasm(name: &str) -> String {
    format!(
        "{}/testdata/rust/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A temporary directory holding the cache and any files a test writes.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    /// The binary with this environment's cache and nothing inherited that changes output.
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("EXTISM_RUN_CACHE", self.cache())
            .env_remove("NO_COLOR")
            .env_remove("EXTISM_ENABLE_WASI_OUTPUT");
        cmd
    }

    fn process(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env("EXTISM_RUN_CACHE", self.cache())
            .env_remove("EXTISM_ENABLE_WASI_OUTPUT");
        cmd
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.cache())
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---- call: output, input ----

#[test]
fn call_writes_the_output_unchanged_and_nothing_on_stderr() {
    Env::new()
        .cmd()
        .args(["call", &wasm("count_vowels"), "count_vowels"])
        .args(["--input", "Hello, World!"])
        .assert()
        .success()
        .stdout(r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#)
        .stderr("");
}

#[test]
fn call_reads_input_from_stdin_piped() {
    Env::new()
        .cmd()
        .args(["call", &wasm("echo"), "echo", "--stdin"])
        .write_stdin(&b"bytes\0\xffpiped"[..])
        .assert()
        .success()
        .stdout(&b"bytes\0\xffpiped"[..]);
}

#[test]
fn call_reads_input_from_a_file_and_short_i() {
    let env = Env::new();
    let file = env.write("input.txt", "from a file");
    env.cmd()
        .args(["call", &wasm("echo"), "length", "--input-file", &file])
        .assert()
        .success()
        .stdout("11");
    env.cmd()
        .args(["call", &wasm("echo"), "echo", "-i", "short"])
        .assert()
        .success()
        .stdout("short");
    env.cmd()
        .args(["call", &wasm("echo"), "length"])
        .assert()
        .success()
        .stdout("0");
}

#[test]
fn input_sources_are_exclusive() {
    Env::new()
        .cmd()
        .args(["call", &wasm("echo"), "echo", "-i", "x", "--stdin"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn loop_calls_one_instance_and_separates_outputs() {
    let env = Env::new();
    env.cmd()
        .args(["call", &wasm("faults"), "count_calls", "--loop", "3"])
        .assert()
        .success()
        .stdout("1\n2\n3\n");
    env.cmd()
        .args(["call", &wasm("echo"), "echo", "--stdin", "--loop", "2"])
        .write_stdin("ab")
        .assert()
        .success()
        .stdout("ab\nab\n");
    env.cmd()
        .args(["call", &wasm("echo"), "echo", "--loop", "0"])
        .assert()
        .code(2);
}

#[test]
fn stats_report_load_each_call_and_a_summary_on_stderr() {
    let out = Env::new()
        .cmd()
        .args([
            "-q",
            "call",
            &wasm("echo"),
            "echo",
            "-i",
            "four",
            "--loop",
            "2",
        ])
        .arg("--stats")
        .assert()
        .success()
        .stdout("four\nfour\n")
        .get_output()
        .clone();
    let stderr = stderr_of(&out);
    assert!(stderr.contains("stats: loaded in "), "{stderr}");
    assert!(stderr.contains("stats: call 1 took "), "{stderr}");
    assert!(stderr.contains("stats: call 2 took "), "{stderr}");
    assert!(stderr.contains(", output 4 bytes"), "{stderr}");
    assert!(stderr.contains("stats: 2 calls in "), "{stderr}");
}

#[test]
fn state_keeps_vars_between_runs_and_reset_removes_it() {
    let env = Env::new();
    let state = env.path("state.json").display().to_string();
    let call = |expected: &str| {
        env.cmd()
            .args(["call", &wasm("count_vowels"), "count_vowels", "-i", "aaa"])
            .args(["--state", &state])
            .assert()
            .success()
            .stdout(expected.to_string());
    };
    call(r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
    call(r#"{"count":3,"total":6,"vowels":"aeiouAEIOU"}"#);
    env.cmd()
        .args(["reset", "--state", &state])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed the state file"));
    assert!(!Path::new(&state).exists());
    call(r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn state_is_saved_after_a_failed_call_and_a_bad_state_file_is_an_input_error() {
    let env = Env::new();
    let state = env.path("state.json").display().to_string();
    env.cmd()
        .args(["call", &wasm("faults"), "var_roundtrip", "-i", "kept"])
        .args(["--state", &state])
        .assert()
        .success()
        .stdout("kept");
    let saved = fs::read_to_string(&state).unwrap();
    assert!(saved.contains(r#""k": "a2VwdA==""#), "{saved}");
    env.cmd()
        .args(["call", &wasm("faults"), "fail", "--state", &state])
        .assert()
        .code(1);
    assert_eq!(fs::read_to_string(&state).unwrap(), saved);

    let bad = env.write("bad.json", "{\"vars\": 1}");
    env.cmd()
        .args(["call", &wasm("faults"), "fail", "--state", &bad])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid state file"));
}

// ---- call: manifest flags ----

#[test]
fn config_flags_merge_with_config_winning_over_set_config() {
    let env = Env::new();
    let cv = wasm("count_vowels");
    env.cmd()
        .args([
            "call",
            &cv,
            "count_vowels",
            "-i",
            "Hello, World!",
            "--config",
            "vowels=lo",
        ])
        .assert()
        .success()
        .stdout(r#"{"count":5,"total":5,"vowels":"lo"}"#);
    env.cmd()
        .args(["call", &cv, "count_vowels", "-i", "Hello, World!"])
        .args([
            "--set-config",
            r#"{"vowels":"o","other":"x"}"#,
            "--config",
            "vowels=lo",
        ])
        .assert()
        .success()
        .stdout(r#"{"count":5,"total":5,"vowels":"lo"}"#);
    env.cmd()
        .args(["call", &cv, "count_vowels", "-i", "Hello, World!"])
        .args(["--set-config", r#"{"vowels":"o"}"#])
        .assert()
        .success()
        .stdout(r#"{"count":2,"total":2,"vowels":"o"}"#);
    // KEY alone sets an empty value.
    env.cmd()
        .args([
            "call",
            &wasm("faults"),
            "config_get",
            "-i",
            "k",
            "--config",
            "k",
        ])
        .assert()
        .success()
        .stdout("<none>");
    env.cmd()
        .args([
            "call",
            &wasm("faults"),
            "config_get",
            "-i",
            "k",
            "--config",
            "k=v=w",
        ])
        .assert()
        .success()
        .stdout("v=w");
}

#[test]
fn malformed_flag_values_are_usage_errors() {
    let env = Env::new();
    for bad in [
        &["--config", "=v"][..],
        &["--set-config", "[1]"],
        &["--set-config", r#"{"k": 1}"#],
        &["--link", "nopath"],
        &["--allow-path", "ro:"],
        &["--timeout", "soon"],
        &["--log-level", "loud"],
        &["--bogus"],
    ] {
        env.cmd()
            .args(["call", &wasm("echo"), "echo"])
            .args(bad)
            .assert()
            .code(2)
            .stderr(predicate::str::starts_with("error:"));
    }
}

#[test]
fn timeout_is_reported_as_a_timeout() {
    Env::new()
        .cmd()
        .args(["call", &wasm("faults"), "loop_forever", "--timeout", "100"])
        .assert()
        .code(1)
        .stderr("error: loop_forever: timeout: timed out after 100 ms\n");
}

#[test]
fn fuel_stops_a_runaway_call() {
    Env::new()
        .cmd()
        .args(["call", &wasm("faults"), "loop_forever", "--fuel", "100000"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "loop_forever: plugin ran out of fuel",
        ));
}

#[test]
fn memory_max_and_var_max_limit_the_plugin() {
    let env = Env::new();
    env.cmd()
        .args([
            "call",
            &wasm("count_vowels"),
            "count_vowels",
            "--memory-max",
            "2",
        ])
        .assert()
        .code(1)
        .stderr("error: count_vowels: out of memory: the limit is 2 pages of 64 KiB\n");
    env.cmd()
        .args([
            "call",
            &wasm("count_vowels"),
            "count_vowels",
            "--var-max",
            "0",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("Vars are disabled"));
    env.cmd()
        .args(["call", &wasm("count_vowels"), "count_vowels", "-i", "a"])
        .args([
            "--memory-max",
            "100",
            "--var-max",
            "64",
            "--http-response-max",
            "10",
        ])
        .assert()
        .success();
}

#[test]
fn minus_one_means_no_limit_for_byte_limits() {
    let env = Env::new();
    env.cmd()
        .args(["call", &wasm("count_vowels"), "count_vowels", "-i", "aei"])
        .args(["--var-max", "-1", "--http-response-max", "-1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""count":3"#));
    for flag in ["--var-max", "--http-response-max"] {
        env.cmd()
            .args(["call", &wasm("count_vowels"), "count_vowels", flag, "-2"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("expected a number of bytes or -1"));
    }
}

#[test]
fn wasi_plugins_need_wasi() {
    let env = Env::new();
    env.cmd()
        .args(["call", &wasm("wasi_stdout"), "hello"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("imports WASI").and(predicate::str::contains("--wasi")));
    env.cmd()
        .args([
            "call",
            &wasm("wasi_stdout"),
            "hello",
            "--wasi",
            "--no-wasi-output",
        ])
        .assert()
        .success()
        .stdout("done");
    // As upstream's CLI: --wasi lets the plugin's WASI output through by default.
    env.cmd()
        .args(["call", &wasm("wasi_stdout"), "hello", "--wasi"])
        .assert()
        .success()
        .stdout("hello from wasi\ndone");
    env.cmd()
        .env("EXTISM_ENABLE_WASI_OUTPUT", "1")
        .args(["call", &wasm("wasi_stdout"), "hello", "--wasi"])
        .assert()
        .success()
        .stdout("hello from wasi\ndone");
}

#[test]
fn allow_path_maps_host_directories_in_every_form() {
    let env = Env::new();
    let dir = env.path("shared");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("hello.txt"), "from the host").unwrap();
    let dir = dir.display().to_string();
    let fs_call = |function: &str, input: &str, allow: &str| {
        let mut cmd = env.cmd();
        cmd.args(["call", &wasm("wasi_fs"), function, "--wasi", "-i", input])
            .args(["--allow-path", allow]);
        cmd
    };
    for (allow, guest) in [
        (format!("{dir}:/data"), "/data/hello.txt".to_string()),
        (format!("{dir}::/data"), "/data/hello.txt".to_string()),
        (dir.clone(), format!("{dir}/hello.txt")),
        (format!("ro:{dir}:/data"), "/data/hello.txt".to_string()),
    ] {
        fs_call("read_file", &guest, &allow)
            .assert()
            .success()
            .stdout("from the host");
    }
    fs_call(
        "write_file",
        "/data/new.txt\nwritten",
        &format!("ro:{dir}:/data"),
    )
    .assert()
    .code(1);
    assert!(!Path::new(&dir).join("new.txt").exists());
    fs_call(
        "write_file",
        "/data/new.txt\nwritten",
        &format!("{dir}:/data"),
    )
    .assert()
    .success()
    .stdout("ok");
    assert_eq!(
        fs::read_to_string(Path::new(&dir).join("new.txt")).unwrap(),
        "written"
    );
}

#[test]
fn allow_path_is_checked_with_wasi_and_warned_about_without() {
    let env = Env::new();
    let missing = env.path("missing").display().to_string();
    env.cmd()
        .args([
            "call",
            &wasm("wasi_stdout"),
            "hello",
            "--wasi",
            "--allow-path",
            &missing,
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot open allowed path"));
    let dir = env.dir.path().display().to_string();
    env.cmd()
        .args([
            "call",
            &wasm("echo"),
            "echo",
            "-i",
            "x",
            "--allow-path",
            &dir,
        ])
        .assert()
        .success()
        .stderr("warning: --allow-path has no effect without --wasi\n");
    env.cmd()
        .args([
            "-q",
            "call",
            &wasm("echo"),
            "echo",
            "-i",
            "x",
            "--allow-path",
            &dir,
        ])
        .assert()
        .success()
        .stderr("");
}

fn http_wat() -> String {
    format!("{}/testdata/wat/http.wat", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn allow_host_and_http_response_max_govern_guest_requests() {
    let env = Env::new();
    let server = Server::start(b"pong".to_vec());
    let request = format!(r#"{{"url": "{}/found"}}"#, server.url);
    env.cmd()
        .args(["call", &http_wat(), "fetch", "-i", &request])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not allowed"));
    for host in ["127.0.0.1", "127.0.0.*"] {
        env.cmd()
            .args(["call", &http_wat(), "fetch", "-i", &request])
            .args(["--allow-host", "example.com", "--allow-host", host])
            .assert()
            .success()
            .stdout("pong");
    }
    env.cmd()
        .args([
            "call",
            &http_wat(),
            "fetch",
            "-i",
            &request,
            "--allow-host",
            "127.0.0.1",
        ])
        .args(["--http-response-max", "2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("exceeds"));
}

#[test]
fn enable_http_response_headers_lets_the_guest_read_them() {
    let env = Env::new();
    let server = Server::start(b"pong".to_vec());
    let plugin = env.write(
        "headers.wat",
        r#"(module
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "fetch_headers") (result i32) (local $h i64)
    (drop (call $http_request (call $input_offset) (i64.const 0)))
    (local.set $h (call $http_headers))
    (call $output_set (local.get $h) (call $length (local.get $h)))
    (i32.const 0)))"#,
    );
    let request = format!(r#"{{"url": "{}/found"}}"#, server.url);
    let call = |extra: &[&str]| {
        let out = env
            .cmd()
            .args([
                "call",
                &plugin,
                "fetch_headers",
                "-i",
                &request,
                "--allow-host",
                "127.0.0.1",
            ])
            .args(extra)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(call(&[]), "");
    let headers = call(&["--enable-http-response-headers"]);
    assert!(headers.contains(r#""x-test":"yes""#), "{headers}");
}

/// `lib.wat` exporting `answer`, and `main.wat` importing it from module `lib` and
/// outputting it as one byte (`*`).
fn linked_pair(env: &Env) -> (String, String) {
    let lib = env.write(
        "lib.wat",
        r#"(module (func (export "answer") (result i32) (i32.const 42)))"#,
    );
    let main = env.write(
        "main.wat",
        r#"(module
  (import "lib" "answer" (func $answer (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (call $answer))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0)))"#,
    );
    (lib, main)
}

#[test]
fn link_supplies_another_module() {
    let env = Env::new();
    let (lib, main) = linked_pair(&env);
    env.cmd()
        .args(["call", &main, "run", "--link", &format!("lib={lib}")])
        .assert()
        .success()
        .stdout("*");
    env.cmd()
        .args(["call", &main, "run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lib::answer () -> i32"));
}

#[test]
fn link_without_a_name_uses_the_file_stem() {
    let env = Env::new();
    let (lib, main) = linked_pair(&env);
    env.cmd()
        .args(["call", &main, "run", "--link", &lib])
        .assert()
        .success()
        .stdout("*");
}

#[test]
fn manifests_are_detected_or_forced() {
    let env = Env::new();
    let json = env.write(
        "plugin.json",
        format!(
            r#"  {{"wasm": [{{"path": "{}"}}], "config": {{"vowels": "lo"}}}}"#,
            wasm("count_vowels")
        ),
    );
    env.cmd()
        .args(["call", &json, "count_vowels", "-i", "Hello, World!"])
        .assert()
        .success()
        .stdout(r#"{"count":5,"total":5,"vowels":"lo"}"#);
    let toml = env.write(
        "plugin.toml",
        format!(
            "config = {{ vowels = \"o\" }}\n[[wasm]]\npath = \"{}\"\n",
            wasm("count_vowels")
        ),
    );
    env.cmd()
        .args(["call", "-m", &toml, "count_vowels", "-i", "Hello, World!"])
        .assert()
        .success()
        .stdout(r#"{"count":2,"total":2,"vowels":"o"}"#);
    // --config overrides the manifest's config.
    env.cmd()
        .args([
            "call",
            &json,
            "count_vowels",
            "-i",
            "Hello, World!",
            "--config",
            "vowels=H",
        ])
        .assert()
        .success()
        .stdout(r#"{"count":1,"total":1,"vowels":"H"}"#);
}

#[test]
fn plugins_download_from_urls() {
    let env = Env::new();
    let server = Server::start(fs::read(wasm("echo")).unwrap());
    env.cmd()
        .args([
            "call",
            &format!("{}/found", server.url),
            "echo",
            "-i",
            "fetched",
        ])
        .assert()
        .success()
        .stdout("fetched");
    env.cmd()
        .args(["call", &format!("{}/missing.wasm", server.url), "echo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("status code 404"));
    env.cmd()
        .args(["call", "-m", &format!("{}/found", server.url), "echo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--manifest needs a file"));
}

/// Serves `body` (with header `X-Test: yes`) at `/found` and 404 elsewhere, on a loopback
/// port, for a few requests.
struct Server {
    url: String,
}

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(mut stream) = stream else { return };
                let request = read_request(&mut stream);
                let (status, payload): (&str, &[u8]) = if request.starts_with(b"GET /found ") {
                    ("200 OK", &body)
                } else {
                    ("404 Not Found", b"")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nX-Test: yes\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    payload.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(payload);
            }
        });
        Server { url }
    }

    /// A server that reads one request and never answers; the receiver hears when it has it.
    fn hanging() -> (String, mpsc::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                read_request(&mut stream);
                let _ = tx.send(());
                // Hold the connection until the client goes away.
                let _ = stream.read_to_end(&mut Vec::new());
            }
        });
        (url, rx)
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        request.push(byte[0]);
    }
    request
}

// ---- call: errors and exit statuses ----

#[test]
fn a_failing_call_exits_1_with_the_function_name() {
    let env = Env::new();
    env.cmd()
        .args(["call", &wasm("faults"), "fail"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("error: fail: this call failed\n");
    env.cmd()
        .args(["call", &wasm("faults"), "trap"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::starts_with("error: trap: ")
                .and(predicate::str::contains("unreachable")),
        );
    env.cmd()
        .args(["call", &wasm("faults"), "no_such_function"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no_such_function"));
}

#[test]
fn input_errors_exit_2_with_one_line() {
    let env = Env::new();
    let not_wasm = env.write("notes.txt", "just some text");
    let bad_manifest = env.write("bad.json", r#"{"wasm": [{"paht": "x"}]}"#);
    let bad_module = env.write("bad.wasm", b"\0asm\x01\0\0\0\xff");
    for (plugin, message) in [
        (
            "no/such/file.wasm".to_string(),
            "cannot read no/such/file.wasm",
        ),
        (not_wasm, "is neither a WebAssembly module"),
        (bad_manifest, "invalid manifest"),
        (bad_module, "cannot load"),
    ] {
        let out = env.cmd().args(["call", &plugin, "f"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{plugin}");
        let stderr = stderr_of(&out);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(message),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    env.cmd().args(["call", &wasm("echo")]).assert().code(2);
    env.cmd().arg("frobnicate").assert().code(2);
}

#[test]
fn verbose_errors_show_the_cause_chain() {
    let env = Env::new();
    let bad_manifest = env.write("bad.json", r#"{"wasm": 3}"#);
    env.cmd()
        .args(["-v", "call", &bad_manifest, "f"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("error: invalid manifest")
                .and(predicate::str::contains("\n  caused by: ")),
        );
}

#[test]
fn host_function_plugins_get_an_error_naming_the_imports() {
    Env::new()
        .cmd()
        .args(["call", &wasm("host_fns"), "roundtrip"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("extism:host/user::host_reflect (i64) -> i64").and(
                predicate::str::contains("extism:host/user::host_context () -> i64"),
            ),
        );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let env = Env::new();
    let input = env.write("big", vec![b'x'; 1 << 20]);
    let mut child = env
        .process()
        .args([
            "call",
            &wasm("echo"),
            "echo",
            "--input-file",
            &input,
            "--loop",
            "50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr_of(&out), "");
}

#[test]
fn help_documents_the_exit_statuses() {
    let env = Env::new();
    for args in [&["--help"][..], &["call", "--help"]] {
        env.cmd()
            .args(args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Exit status:").and(predicate::str::contains("130")));
    }
    for page in ["extism-run.1", "extism-run-call.1"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(page);
        let text = fs::read_to_string(path).unwrap();
        assert!(text.contains(".SH \"EXIT STATUS\"\n.TP\n"), "{page}");
        assert!(
            text.contains(".TP\n\\fB130\\fR\ninterrupted by Ctrl"),
            "{page}"
        );
    }
    env.cmd()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("extism-run "));
}

// ---- Ctrl-C ----

/// Starts the binary with stderr piped; lines arrive on the returned channel.
fn spawn_watching_stderr(mut cmd: std::process::Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no stderr line containing {needle:?}"));
        if line.contains(needle) {
            return;
        }
    }
}

fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child, failing (and killing it) if it takes longer than a generous bound.
fn exit_code_within(child: &mut Child, bound: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            panic!("the process did not exit within {bound:?} of Ctrl-C");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_cancels_an_infinite_loop_and_exits_130() {
    let env = Env::new();
    let mut cmd = env.process();
    cmd.args(["-v", "call", &wasm("faults"), "loop_forever"]);
    let (mut child, rx) = spawn_watching_stderr(cmd);
    wait_for_line(&rx, "call to loop_forever started");
    interrupt(&child);
    assert_eq!(
        exit_code_within(&mut child, Duration::from_secs(30)),
        Some(130)
    );
    wait_for_line(&rx, "error: loop_forever: interrupted (Ctrl-C)");
}

#[test]
fn a_second_ctrl_c_exits_at_once_while_a_host_call_blocks() {
    let env = Env::new();
    let (url, accepted) = Server::hanging();
    let mut cmd = env.process();
    cmd.args(["call", &http_wat(), "fetch", "--allow-host", "127.0.0.1"])
        .args(["-i", &format!(r#"{{"url": "{url}/"}}"#)]);
    let (mut child, rx) = spawn_watching_stderr(cmd);
    accepted
        .recv_timeout(Duration::from_secs(120))
        .expect("the plugin sends its request");
    interrupt(&child);
    wait_for_line(&rx, "press Ctrl-C again to exit at once");
    interrupt(&child);
    assert_eq!(
        exit_code_within(&mut child, Duration::from_secs(30)),
        Some(130)
    );
    wait_for_line(&rx, "error: interrupted (Ctrl-C)");
}

#[test]
fn ctrl_c_before_the_plugin_runs_exits_130_at_once() {
    let env = Env::new();
    let mut cmd = env.process();
    cmd.args(["-v", "call", &wasm("echo"), "echo", "--stdin"]);
    let (mut child, rx) = spawn_watching_stderr(cmd);
    wait_for_line(&rx, "reading the input from stdin");
    interrupt(&child);
    assert_eq!(
        exit_code_within(&mut child, Duration::from_secs(30)),
        Some(130)
    );
    wait_for_line(&rx, "error: interrupted (Ctrl-C)");
}

// ---- the compiled-module cache ----

fn verbose_call(env: &Env, extra: &[&str]) -> String {
    let out = env
        .cmd()
        .args(["-v", "call", &wasm("echo"), "echo", "-i", "cached"])
        .args(extra)
        .assert()
        .success()
        .stdout("cached")
        .get_output()
        .clone();
    stderr_of(&out)
}

#[test]
fn the_second_run_uses_the_cache() {
    let env = Env::new();
    let first = verbose_call(&env, &[]);
    assert!(first.contains("saved compiled module to"), "{first}");
    assert!(!first.contains("using cached module"), "{first}");
    assert_eq!(env.cache_files().len(), 1);
    let second = verbose_call(&env, &[]);
    assert!(second.contains("using cached module"), "{second}");
}

#[test]
fn a_corrupted_cache_file_is_recompiled_and_replaced() {
    let env = Env::new();
    verbose_call(&env, &[]);
    let file = env.cache_files().remove(0);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("invalid cache file"), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("saved compiled module to"), "{stderr}");
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("using cached module"), "{stderr}");

    fs::write(&file, b"short").unwrap();
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("shorter than its header"), "{stderr}");
    fs::write(&file, vec![7u8; 4096]).unwrap();
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("not a cache file"), "{stderr}");
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("using cached module"), "{stderr}");
}

#[test]
fn a_cache_file_from_another_engine_is_not_used() {
    let env = Env::new();
    verbose_call(&env, &[]);
    let plain = env.cache_files();
    verbose_call(&env, &["--fuel", "1000000"]);
    let fuel: Vec<PathBuf> = env
        .cache_files()
        .into_iter()
        .filter(|f| !plain.contains(f))
        .collect();
    assert_eq!((plain.len(), fuel.len()), (1, 1));
    fs::copy(&fuel[0], &plain[0]).unwrap();
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("compiled by another engine"), "{stderr}");
    let stderr = verbose_call(&env, &[]);
    assert!(stderr.contains("using cached module"), "{stderr}");
}

#[test]
fn no_cache_bypasses_the_cache() {
    let env = Env::new();
    let stderr = verbose_call(&env, &["--no-cache"]);
    assert!(!stderr.contains("cached module"), "{stderr}");
    assert!(env.cache_files().is_empty());
    env.cmd()
        .args(["exists", "--no-cache", &wasm("echo"), "echo"])
        .assert()
        .success();
    assert!(env.cache_files().is_empty());
}

#[test]
fn reset_clears_the_cache_and_says_so() {
    let env = Env::new();
    let cache = env.cache().display().to_string();
    env.cmd()
        .arg("reset")
        .assert()
        .success()
        .stdout(format!("the compiled-module cache {cache} is empty\n"));
    verbose_call(&env, &[]);
    env.cmd()
        .args(["exists", &wasm("count_vowels"), "count_vowels"])
        .assert()
        .success();
    env.cmd().arg("reset").assert().success().stdout(
        predicate::str::starts_with("removed 2 compiled module files (")
            .and(predicate::str::ends_with(format!(") from {cache}\n"))),
    );
    assert!(env.cache_files().is_empty());
    env.cmd()
        .args(["-q", "reset"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn reset_leaves_files_that_are_not_state_files() {
    let env = Env::new();
    let precious = env.write("precious.json", r#"{"keep": true}"#);
    env.cmd()
        .args(["reset", "--state", &precious])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an extism-run state file"));
    assert!(Path::new(&precious).exists());
    let missing = env.path("missing.json").display().to_string();
    env.cmd()
        .args(["reset", "--state", &missing])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "there is no state file {missing}"
        )));
}

// ---- log ----

#[test]
fn log_prints_guest_lines_at_info_by_default_and_discards_output() {
    Env::new()
        .cmd()
        .args(["log", &wasm("logging"), "log_all"])
        .assert()
        .success()
        .stdout(
            "INFO  guest: info message\nWARN  guest: warn message\nERROR guest: error message\n",
        );
}

#[test]
fn log_level_format_and_output() {
    let env = Env::new();
    let output = env.path("out.txt");
    let out = env
        .cmd()
        .args([
            "log",
            &wasm("logging"),
            "log_all",
            "--level",
            "trace",
            "--format",
            "json",
        ])
        .args(["--output", &output.display().to_string()])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(fs::read_to_string(&output).unwrap(), "ok");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let guest: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["source"] == "guest")
        .map(|l| (l["level"].as_str().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        guest,
        [
            ("trace", "trace message"),
            ("debug", "debug message"),
            ("info", "info message"),
            ("warn", "warn message"),
            ("error", "error message"),
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["target"].is_string() && l["fields"].is_object()));
    // Runtime events show at debug: the call itself.
    assert!(
        lines.iter().any(|l| l["source"] == "runtime"
            && l["message"]
                .as_str()
                .unwrap()
                .starts_with("call to log_all started")),
        "{lines:?}"
    );
    env.cmd()
        .args(["log", &wasm("logging"), "log_all", "--level", "error"])
        .assert()
        .success()
        .stdout("ERROR guest: error message\n");
}

#[test]
fn call_log_level_prints_guest_lines_on_stderr() {
    Env::new()
        .cmd()
        .args(["call", &wasm("logging"), "log_all", "--log-level", "warn"])
        .assert()
        .success()
        .stdout("ok")
        .stderr("WARN  guest: warn message\nERROR guest: error message\n");
}

#[test]
fn call_prints_guest_error_lines_by_default_and_quiet_silences_them() {
    let env = Env::new();
    env.cmd()
        .args(["call", &wasm("logging"), "log_all"])
        .assert()
        .success()
        .stdout("ok")
        .stderr("ERROR guest: error message\n");
    env.cmd()
        .args(["call", &wasm("logging"), "log_all", "-q"])
        .assert()
        .success()
        .stdout("ok")
        .stderr("");
    // An explicit level is what was asked for: -q does not hide it.
    env.cmd()
        .args([
            "call",
            &wasm("logging"),
            "log_all",
            "-q",
            "--log-level",
            "error",
        ])
        .assert()
        .success()
        .stderr("ERROR guest: error message\n");
}

#[test]
fn version_names_the_compatible_upstream_release() {
    Env::new()
        .cmd()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!(
            "extism-run {} (extism {} compatible)\n",
            env!("CARGO_PKG_VERSION"),
            extism::UPSTREAM_VERSION
        ));
}

#[test]
fn log_reports_a_failed_call_like_call() {
    Env::new()
        .cmd()
        .args(["log", &wasm("faults"), "fail"])
        .assert()
        .code(1)
        .stderr("error: fail: this call failed\n");
}

// ---- exists ----

#[test]
fn exists_checks_plugin_functions() {
    let env = Env::new();
    let cv = wasm("count_vowels");
    env.cmd()
        .args(["exists", &cv, "count_vowels", "count_vowels_no_vars"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    env.cmd()
        .args([
            "exists",
            &cv,
            "count_vowels",
            "nope",
            "memory",
            "__heap_base",
        ])
        .assert()
        .code(1)
        .stdout("missing: nope\nmissing: memory\nmissing: __heap_base\n");
    env.cmd()
        .args(["exists", "-q", &cv, "nope"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("");
    env.cmd().args(["exists", &cv]).assert().code(2);
    env.cmd()
        .args(["exists", "missing.wasm", "f"])
        .assert()
        .code(2);
    // Host-function plugins compile fine: their exports can be checked.
    env.cmd()
        .args(["exists", &wasm("host_fns"), "roundtrip", "read_context"])
        .assert()
        .success();
}

// ---- config ----

#[test]
fn config_prints_the_resolved_manifest() {
    let env = Env::new();
    let dir = env.dir.path().display().to_string();
    let out = env
        .cmd()
        .args(["config", &wasm("count_vowels"), "--config", "vowels=lo"])
        .args([
            "--set-config",
            r#"{"a":"1"}"#,
            "--timeout",
            "1500",
            "--memory-max",
            "40",
        ])
        .args(["--var-max", "64", "--http-response-max", "1000"])
        .args(["--allow-host", "*.example.com"])
        .args([
            "--allow-path",
            &format!("ro:{dir}:/data"),
            "--allow-path",
            &format!("{dir}::/rw"),
        ])
        .args(["--link", &format!("lib={}", wasm("echo"))])
        .assert()
        .success()
        .get_output()
        .clone();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sha = |name: &str| extism::manifest::sha256_hex(&fs::read(wasm(name)).unwrap());
    assert_eq!(m["wasm"][0]["name"], "lib");
    assert_eq!(m["wasm"][0]["hash"], sha("echo"));
    assert_eq!(m["wasm"][1]["path"], wasm("count_vowels"));
    assert_eq!(m["wasm"][1]["hash"], sha("count_vowels"));
    assert_eq!(m["config"], serde_json::json!({"a": "1", "vowels": "lo"}));
    assert_eq!(m["timeout_ms"], 1500);
    assert_eq!(m["memory"]["max_pages"], 40);
    assert_eq!(m["memory"]["max_var_bytes"], 64);
    assert_eq!(m["memory"]["max_http_response_bytes"], 1000);
    assert_eq!(m["allowed_hosts"], serde_json::json!(["*.example.com"]));
    assert_eq!(
        m["allowed_paths"],
        serde_json::json!({ format!("ro:{dir}"): "/data", dir.clone(): "/rw" })
    );
}

#[test]
fn config_write_saves_a_manifest_that_call_accepts() {
    let env = Env::new();
    let saved = env.path("saved.json").display().to_string();
    let work = env.path("elsewhere");
    fs::create_dir(&work).unwrap();
    // A relative plugin path is made absolute, so the manifest works from anywhere.
    env.cmd()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "config",
            "testdata/rust/wasm/count_vowels.wasm",
            "--config",
            "vowels=lo",
        ])
        .args(["--write", &saved])
        .assert()
        .success()
        .stdout("")
        .stderr(format!("wrote {saved}\n"));
    env.cmd()
        .current_dir(&work)
        .args(["call", "-m", &saved, "count_vowels", "-i", "Hello, World!"])
        .assert()
        .success()
        .stdout(r#"{"count":5,"total":5,"vowels":"lo"}"#);
    // The saved hash is checked: a different module no longer matches.
    let tampered = fs::read_to_string(&saved)
        .unwrap()
        .replace("count_vowels.wasm", "echo.wasm");
    let tampered = env.write("tampered.json", tampered);
    env.cmd()
        .args(["call", &tampered, "echo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Hash mismatch"));
}

// ---- inspect ----

#[test]
fn inspect_describes_imports_exports_and_memory() {
    let env = Env::new();
    env.cmd()
        .args(["inspect", &wasm("count_vowels")])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("module main (")
                .and(predicate::str::contains(
                    "extism:host/env (provided by Extism)",
                ))
                .and(predicate::str::contains("input_load_u64  (i64) -> i64"))
                .and(predicate::str::contains(
                    "count_vowels          func () -> i32  plugin function",
                ))
                .and(predicate::str::contains("0: 17 pages, exported as memory"))
                .and(predicate::str::contains(format!(
                    "sha256  {}",
                    extism::manifest::sha256_hex(&fs::read(wasm("count_vowels")).unwrap())
                )))
                .and(predicate::str::ends_with("runs with extism-run: yes\n")),
        );
    env.cmd()
        .args(["inspect", &wasm("host_fns")])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("extism:host/user (host functions the host must supply)")
                .and(predicate::str::contains("runs with extism-run: no")),
        );
    env.cmd()
        .args(["inspect", &wasm("wasi_stdout")])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("wasi_snapshot_preview1 (WASI, needs --wasi)")
                .and(predicate::str::contains(
                    "fd_write           (i32, i32, i32, i32) -> i32",
                ))
                .and(predicate::str::contains(
                    "runs with extism-run: yes, with --wasi",
                )),
        );
}

#[test]
fn inspect_json() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["inspect", "--json", &wasm("host_fns")])
        .assert()
        .success()
        .get_output()
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let module = &r["modules"][0];
    assert_eq!(module["name"], "main");
    assert_eq!(module["size"], fs::read(wasm("host_fns")).unwrap().len());
    let reflect = module["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "host_reflect")
        .unwrap();
    assert_eq!(reflect["module"], "extism:host/user");
    assert_eq!(reflect["type"], "(i64) -> i64");
    assert_eq!(reflect["provider"], "host");
    let exports = module["exports"].as_array().unwrap();
    let callable: Vec<&str> = exports
        .iter()
        .filter(|e| e["plugin_function"] == true)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(callable, ["read_context", "roundtrip"]);
    assert_eq!(module["memories"][0]["min"], 17);
    assert_eq!(
        module["memories"][0]["exports"],
        serde_json::json!(["memory"])
    );
    assert_eq!(
        r["needs"]["host_functions"],
        serde_json::json!([
            "extism:host/user::host_context () -> i64",
            "extism:host/user::host_reflect (i64) -> i64"
        ])
    );
    env.cmd()
        .args(["inspect", &env.write("x.txt", "text")])
        .assert()
        .code(2);
}

// ---- completions and man pages ----

#[test]
fn committed_completions_and_man_pages_are_current() {
    let env = Env::new();
    let out = env.path("docs");
    env.cmd()
        .args(["generate-docs", &out.display().to_string()])
        .assert()
        .success();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["completions", "man"] {
        let names = |d: &Path| {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let generated = names(&out.join(dir));
        assert_eq!(
            names(&root.join(dir)),
            generated,
            "{dir}/ is stale: run `cargo run -- generate-docs .`"
        );
        for name in generated {
            assert!(
                fs::read(root.join(dir).join(&name)).unwrap()
                    == fs::read(out.join(dir).join(&name)).unwrap(),
                "{dir}/{name} is stale: run `cargo run -- generate-docs .`"
            );
        }
    }
}

// ---- --profile ----

fn profile_wat() -> String {
    format!("{}/testdata/wat/profile.wat", env!("CARGO_MANIFEST_DIR"))
}

/// Frame names in a flame graph SVG (the `<title>` of each frame, without its figures).
fn svg_frames(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.tag_name().name() == "title")
        .filter_map(|n| n.text())
        .map(|t| t.split(" (").next().unwrap().to_string())
        .collect()
}

#[test]
fn profile_writes_a_flame_graph_of_every_loop_call() {
    let env = Env::new();
    let out = env.path("run.svg");
    env.cmd()
        .args(["call", &profile_wat(), "host_and_kernel", "--loop", "3"])
        .args([
            "--profile",
            &out.display().to_string(),
            "--profile-interval",
            "200us",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("profile: ").and(predicate::str::contains("run.svg")));
    let frames = svg_frames(&out);
    for frame in ["host_and_kernel", "[host] get_log_level"] {
        assert!(frames.iter().any(|f| f == frame), "{frame} in {frames:?}");
    }
    // The guest's `alloc` and `free` calls (which of the two short calls a sample lands in
    // varies).
    assert!(
        frames.iter().any(|f| f.starts_with("[kernel] ")),
        "a kernel frame in {frames:?}"
    );
}

#[test]
fn profile_json_is_a_firefox_profile() {
    let env = Env::new();
    let out = env.path("run.json");
    env.cmd()
        .args(["-q", "call", &profile_wat(), "run"])
        .args(["--profile", &out.display().to_string()])
        .assert()
        .success()
        .stderr("");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let strings = v["threads"][0]["stringArray"].as_array().unwrap();
    assert!(strings.iter().any(|s| s == "hot"), "{strings:?}");
}

#[test]
fn profile_is_written_for_a_timed_out_call_and_a_multi_module_plugin() {
    let env = Env::new();
    let out = env.path("timeout.svg");
    env.cmd()
        .args(["call", &profile_wat(), "forever", "--timeout", "300"])
        .args([
            "--link",
            &format!("other={}", env.write("other.wat", "(module)")),
        ])
        .args(["--profile", &out.display().to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: forever: timeout: timed out after 300 ms",
        ));
    assert!(svg_frames(&out).iter().any(|f| f == "forever"));
}

#[test]
fn profile_is_written_after_ctrl_c() {
    let env = Env::new();
    let out = env.path("interrupted.svg");
    let mut cmd = env.process();
    cmd.args(["-v", "call", &profile_wat(), "forever"])
        .args(["--profile", &out.display().to_string()]);
    let (mut child, rx) = spawn_watching_stderr(cmd);
    wait_for_line(&rx, "call to forever started");
    interrupt(&child);
    assert_eq!(
        exit_code_within(&mut child, Duration::from_secs(30)),
        Some(130)
    );
    assert!(svg_frames(&out).iter().any(|f| f == "forever"));
}

#[test]
fn profile_flags_are_checked_before_anything_runs() {
    let env = Env::new();
    env.cmd()
        .args(["call", &profile_wat(), "quick", "--profile", "out.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "name it .svg (flame graph) or .json",
        ));
    env.cmd()
        .args([
            "call",
            &profile_wat(),
            "quick",
            "--profile",
            "a.svg",
            "--profile-interval",
            "5",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give a unit"));
    env.cmd()
        .args(["call", &profile_wat(), "quick", "--profile-interval", "1ms"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--profile"));
    assert!(!Path::new("out.txt").exists() && !Path::new("a.svg").exists());
}

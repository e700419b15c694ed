//! libextism as C programs and the Python host SDK use it.
//!
//! - the exported `extism_*` symbols are exactly the functions of include/extism.h;
//! - the header compiles as C and C++;
//! - tests/c/capi_test.c, compiled with the system C compiler, runs against the shared and the
//!   static library (one process per logging mode: logging is set up once per process);
//! - scripts/install.sh installs into a temporary prefix, and a program builds with
//!   `pkg-config --cflags --libs extism`;
//! - the PyPI `extism` SDK passes tests/python through scripts/python-tests.sh.
//!
//! The library files come from this very `cargo test`: cargo compiles the library target once
//! with all its crate types (rlib, cdylib, staticlib) before linking any integration test
//! against the rlib, and puts them in the `deps` directory next to this test executable. A
//! nested `cargo build` is avoided: it would wait for the build lock that `cargo test` holds.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The directory holding the libextism.so and libextism.a of this build.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    let found = [deps, deps.parent().unwrap_or(deps)]
        .into_iter()
        .find(|d| d.join("libextism.so").is_file() && d.join("libextism.a").is_file())
        .map(Path::to_path_buf);
    found.unwrap_or_else(|| {
        panic!(
            "libextism.so and libextism.a not found near {}",
            exe.display()
        )
    })
}

fn root(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory")
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Compiles tests/c/capi_test.c to `exe` with `link` as the library arguments.
fn compile_c_test(exe: &Path, cflags: &[&str], link: &[&str]) {
    run(Command::new(cc())
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg(format!(
            "-DEXPECTED_VERSION=\"{}\"",
            extism::extism_version()
        ))
        .args(cflags)
        .arg(root("tests/c/capi_test.c"))
        .args(link)
        .arg("-o")
        .arg(exe));
}

/// The "N passed, M failed" summary of a test program run.
fn summary(out: &Output) -> (u32, u32) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|line| {
            let (passed, failed) = line.trim().split_once(" passed, ")?;
            let failed = failed.strip_suffix(" failed")?;
            Some((passed.parse().ok()?, failed.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"))
}

/// Runs the C test program in `mode`; returns the number of passed checks.
fn run_c_test(exe: &Path, env: &[(&str, &Path)], mode: &[&str]) -> u32 {
    let mut cmd = Command::new(exe);
    cmd.arg(root("testdata")).args(mode);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let (passed, failed) = summary(&out);
    assert_eq!(failed, 0);
    assert!(passed > 0);
    println!(
        "capi_test {}: {passed} passed, {failed} failed",
        mode.join(" ")
    );
    passed
}

/// Every logging mode is a separate process (the sink can be set up once per process).
fn run_all_modes(exe: &Path, env: &[(&str, &Path)], dir: &Path) -> u32 {
    let log = dir.join("extism.log");
    let log = log.to_str().expect("UTF-8 path");
    let modes: [&[&str]; 7] = [
        &["main"],
        &["log-filter"],
        &["log-trace"],
        &["log-bad-filter"],
        &["log-off"],
        &["log-null"],
        &["log-file", log],
    ];
    modes.iter().map(|m| run_c_test(exe, env, m)).sum()
}

/// The function names declared in a C header (comments removed).
fn declared_functions(header: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..]
            .split_once("*/")
            .map_or("", |(_, after)| after);
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("extism_") {
        let name: String = code[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let before = code[..i].chars().next_back();
        let after = code[i + name.len()..].trim_start();
        if after.starts_with('(') && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            names.insert(name);
        }
    }
    names
}

#[test]
fn exported_symbols_are_exactly_the_header_functions() {
    let header = std::fs::read_to_string(root("include/extism.h")).expect("include/extism.h");
    let declared = declared_functions(&header);
    assert_eq!(declared.len(), 33, "{declared:?}");

    let out = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib_dir().join("libextism.so")));
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("extism_"))
        .map(String::from)
        .collect();
    assert_eq!(
        exported,
        declared,
        "exported but not declared: {:?}; declared but not exported: {:?}",
        exported.difference(&declared).collect::<Vec<_>>(),
        declared.difference(&exported).collect::<Vec<_>>()
    );
}

#[test]
fn header_compiles_as_c_and_cpp() {
    let include = format!("-I{}", root("include").display());
    for (compiler, lang, std) in [
        (cc(), "c", "-std=c99"),
        ("c++".to_string(), "c++", "-std=c++11"),
    ] {
        let mut child = Command::new(&compiler)
            .args([
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                std,
                "-x",
                lang,
                "-",
            ])
            .arg(&include)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
        use std::io::Write;
        // Twice: `#pragma once` must hold.
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"#include \"extism.h\"\n#include \"extism.h\"\nint main(void) { return extism_version() == 0; }\n")
            .expect("write source");
        let out = child.wait_with_output().expect("compiler");
        assert!(
            out.status.success(),
            "{compiler} ({lang}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn c_program_against_the_shared_library() {
    let lib = lib_dir();
    let dir = scratch();
    let exe = dir.path().join("capi_test");
    let include = format!("-I{}", root("include").display());
    let libdir = format!("-L{}", lib.display());
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    compile_c_test(
        &exe,
        &[&include],
        &[&libdir, "-lextism", "-lpthread", &rpath],
    );
    let passed = run_all_modes(&exe, &[], dir.path());
    println!("C API against libextism.so: {passed} passed, 0 failed");
}

#[test]
fn c_program_against_the_static_library() {
    let lib = lib_dir().join("libextism.a");
    let dir = scratch();
    let exe = dir.path().join("capi_test_static");
    let include = format!("-I{}", root("include").display());
    let lib = lib.to_str().expect("UTF-8 path");
    compile_c_test(&exe, &[&include], &[lib, "-lpthread", "-ldl", "-lm"]);
    let passed = run_c_test(&exe, &[], &["main"]);
    println!("C API against libextism.a: {passed} passed, 0 failed");
}

#[test]
fn install_script_and_pkg_config() {
    let dir = scratch();
    let prefix = dir.path().join("prefix");
    run(Command::new("bash")
        .arg(root("scripts/install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(lib_dir()));
    for file in [
        "lib/libextism.so",
        "lib/libextism.a",
        "include/extism.h",
        "lib/pkgconfig/extism.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} not installed");
    }
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new("pkg-config")
            .args(args)
            .arg("extism")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(pkg_config(&["--modversion"]), [env!("CARGO_PKG_VERSION")]);
    let cflags = pkg_config(&["--cflags"]);
    let cflags: Vec<&str> = cflags.iter().map(String::as_str).collect();

    // `cc app.c $(pkg-config --cflags --libs extism)`, run from the installed shared library
    let exe = dir.path().join("app");
    let libs = pkg_config(&["--libs"]);
    let mut link: Vec<&str> = libs.iter().map(String::as_str).collect();
    link.push("-lpthread");
    compile_c_test(&exe, &cflags, &link);
    run_c_test(
        &exe,
        &[("LD_LIBRARY_PATH", prefix.join("lib").as_path())],
        &["log-off"],
    );

    // and statically: only the archive is left for the linker to find
    std::fs::remove_file(prefix.join("lib/libextism.so")).expect("remove shared library");
    let exe = dir.path().join("app_static");
    let libs = pkg_config(&["--static", "--libs"]);
    let link: Vec<&str> = libs.iter().map(String::as_str).collect();
    compile_c_test(&exe, &cflags, &link);
    run_c_test(&exe, &[], &["log-off"]);
}

#[test]
fn python_sdk() {
    let lib = lib_dir().join("libextism.so");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
    let out = run(Command::new("bash")
        .arg(root("scripts/python-tests.sh"))
        .arg("-q")
        .env("EXTISM_LIB", &lib)
        .env("EXTISM_PY_VENV", &venv)
        .env("EXTISM_EXPECTED_VERSION", extism::extism_version()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    println!("Python SDK: {last}");
    assert!(
        last.contains(" passed") && !last.contains("failed"),
        "{stdout}"
    );
}

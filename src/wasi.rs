//! The WASI preview 1 context of a plugin instance.
//!
//! Owns turning `allowed_paths` into preopened directories (`ro:` prefix = read-only) and the
//! rest of the guest's WASI view: no arguments, no environment, empty stdin, and stdout/stderr
//! discarded unless `EXTISM_ENABLE_WASI_OUTPUT` is set (then inherited), as upstream.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, Result};
use wasmtime_wasi::{p1::WasiP1Ctx, FsPerms, WasiCtxBuilder};

/// A host path from `allowed_paths`, split into the path and whether it is read-only.
pub fn parse_host_path(host: &str) -> (&str, bool) {
    match host.strip_prefix("ro:") {
        Some(path) => (path, true),
        None => (host, false),
    }
}

pub(crate) fn build(allowed_paths: Option<&BTreeMap<String, PathBuf>>) -> Result<WasiP1Ctx> {
    let mut builder = WasiCtxBuilder::new();
    if std::env::var_os("EXTISM_ENABLE_WASI_OUTPUT").is_some() {
        builder.inherit_stdout().inherit_stderr();
    }
    for (host, guest) in allowed_paths.into_iter().flatten() {
        let (path, read_only) = parse_host_path(host);
        let perms = if read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        let guest = guest.to_string_lossy();
        builder
            .preopened_dir(path, guest.as_ref(), perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open allowed path {path:?}"))?;
    }
    Ok(builder.build_p1())
}

//! The WASI preview 1 context of a plugin instance.
//!
//! Owns turning `allowed_paths` into preopened directories (`ro:` prefix = read-only) and the
//! rest of the guest's WASI view: no arguments, no environment, empty stdin, and stdout/stderr
//! discarded unless `EXTISM_ENABLE_WASI_OUTPUT` is set (then inherited), as upstream.
//!
//! A single file can be mounted (upstream #732 cannot): it is hard-linked into a private
//! directory that is mounted in its place, so the guest sees that one file and nothing beside
//! it. The directory lives as long as the WASI context.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context, Result};
use tempfile::TempDir;
use wasmtime_wasi::{p1::WasiP1Ctx, FsPerms, WasiCtxBuilder};

/// A WASI context and the private directories behind its single-file mounts.
pub(crate) struct Wasi {
    pub ctx: WasiP1Ctx,
    pub file_mounts: Vec<TempDir>,
}

/// A host path from `allowed_paths`, split into the path and whether it is read-only.
pub fn parse_host_path(host: &str) -> (&str, bool) {
    match host.strip_prefix("ro:") {
        Some(path) => (path, true),
        None => (host, false),
    }
}

pub(crate) fn build(allowed_paths: Option<&BTreeMap<String, PathBuf>>) -> Result<Wasi> {
    let mut builder = WasiCtxBuilder::new();
    if std::env::var_os("EXTISM_ENABLE_WASI_OUTPUT").is_some() {
        builder.inherit_stdout().inherit_stderr();
    }
    let mut file_mounts = Vec::new();
    for (host, guest) in allowed_paths.into_iter().flatten() {
        let (path, read_only) = parse_host_path(host);
        let perms = if read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        let open_error =
            |e: std::io::Error| anyhow!(e).context(format!("cannot open allowed path {path:?}"));
        let meta = std::fs::metadata(path).map_err(open_error)?;
        let (dir, guest_dir) = if meta.is_dir() {
            (PathBuf::from(path), guest.clone())
        } else {
            let mount = single_file_dir(Path::new(path), guest).map_err(open_error)?;
            let dir = mount.path().to_path_buf();
            file_mounts.push(mount);
            let parent = guest.parent().filter(|p| !p.as_os_str().is_empty());
            (
                dir,
                parent
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("/")),
            )
        };
        let guest_dir = guest_dir.to_string_lossy();
        builder
            .preopened_dir(&dir, guest_dir.as_ref(), perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open allowed path {path:?}"))?;
    }
    Ok(Wasi {
        ctx: builder.build_p1(),
        file_mounts,
    })
}

/// A private directory holding a hard link to `file` under the guest's file name. The link
/// must be on the file's file system: the system temp directory is tried first, then a hidden
/// directory beside the file.
fn single_file_dir(file: &Path, guest: &Path) -> std::io::Result<TempDir> {
    let name = guest.file_name().or(file.file_name()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a file mount needs a file name",
        )
    })?;
    let link = |dir: TempDir| std::fs::hard_link(file, dir.path().join(name)).map(|()| dir);
    match link(tempfile::Builder::new().prefix("extism-mount-").tempdir()?) {
        Ok(dir) => Ok(dir),
        Err(_) => {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            let beside = tempfile::Builder::new()
                .prefix(".extism-mount-")
                .tempdir_in(parent.unwrap_or(Path::new(".")))?;
            link(beside)
        }
    }
}

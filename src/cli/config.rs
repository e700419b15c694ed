//! `extism-run config PLUGIN`: the manifest that PLUGIN and the same flags as `call` resolve
//! to, as JSON: every source with its sha256, file and allowed paths made absolute, memory
//! limits, timeout, hosts and config. --write FILE saves it as a manifest `call -m` accepts.

use std::{fs, path::Path};

use anyhow::Context;
use extism::{manifest::sha256_hex, wasi::parse_host_path, ManifestExt, Wasm};

use super::{
    args::ConfigArgs,
    failure::Result,
    source,
    ui::{write_stdout, Ui},
};

pub fn run(args: ConfigArgs, ui: &Ui) -> Result {
    let mut manifest = source::manifest(&args.source)?;
    source::apply(&mut manifest, &args.manifest);
    let modules = source::resolve(&manifest, ui)?;
    for (wasm, module) in manifest.wasm.iter_mut().zip(&modules) {
        wasm.meta_mut().hash = Some(sha256_hex(&module.bytes));
        if let Wasm::File { path, .. } = wasm {
            *path = std::path::absolute(&*path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
        }
    }
    if let Some(paths) = manifest.allowed_paths.take() {
        let absolute = paths
            .into_iter()
            .map(|(host, guest)| {
                let (path, read_only) = parse_host_path(&host);
                let path = std::path::absolute(Path::new(path))
                    .with_context(|| format!("cannot resolve {path}"))?;
                let prefix = if read_only { "ro:" } else { "" };
                Ok((format!("{prefix}{}", path.display()), guest))
            })
            .collect::<anyhow::Result<_>>()?;
        manifest.allowed_paths = Some(absolute);
    }
    let mut json = manifest.to_json()?;
    json.push('\n');
    match &args.write {
        Some(path) => {
            fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
            ui.note(format_args!("wrote {}", path.display()));
        }
        None => write_stdout(json.as_bytes()).context("cannot write to stdout")?,
    }
    Ok(())
}

//! `extism-run inspect PLUGIN`: for each module of the plugin, its source, size and sha256;
//! imports grouped by module with signatures and who provides them (Extism, WASI, another
//! module, or a host function the host must supply); exports, marking plugin functions;
//! memories; and what running it takes. --json prints the same as one JSON object.

use std::fmt::Write as _;

use anyhow::Context;
use extism::{manifest::sha256_hex, Wasm};
use serde::Serialize;

use super::{
    args::InspectArgs,
    failure::Result,
    module_info::{self, pages, ModuleInfo, Needs, Provider},
    source,
    ui::{write_stdout, Ui},
};

#[derive(Serialize)]
struct Report {
    modules: Vec<Module>,
    needs: Needs,
}

#[derive(Serialize)]
struct Module {
    name: String,
    source: String,
    size: usize,
    sha256: String,
    #[serde(flatten)]
    info: ModuleInfo,
}

pub fn run(args: InspectArgs, ui: &Ui) -> Result {
    let manifest = source::manifest(&args.source)?;
    let resolved = source::resolve(&manifest, ui)?;
    let names: Vec<&str> = resolved.iter().map(|m| m.name.as_str()).collect();
    let mut modules = Vec::with_capacity(resolved.len());
    for (wasm, m) in manifest.wasm.iter().zip(&resolved) {
        let source = match wasm {
            Wasm::File { path, .. } => path.display().to_string(),
            Wasm::Url { req, .. } => req.url.clone(),
            Wasm::Data { .. } => "inline data".to_string(),
        };
        let info = module_info::parse(&m.bytes, &names)
            .with_context(|| format!("cannot read module {} ({source})", m.name))?;
        modules.push(Module {
            name: m.name.clone(),
            source,
            size: m.bytes.len(),
            sha256: sha256_hex(&m.bytes),
            info,
        });
    }
    let needs = Needs::of(modules.iter().map(|m| &m.info));
    let report = Report { modules, needs };
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&report).context("cannot encode JSON")?;
        json.push('\n');
        json
    } else {
        text(&report)
    };
    write_stdout(text.as_bytes()).context("cannot write to stdout")?;
    Ok(())
}

fn text(report: &Report) -> String {
    let mut s = String::new();
    for m in &report.modules {
        module_text(&mut s, m);
        s.push('\n');
    }
    let needs = &report.needs;
    let verdict = if !needs.host_functions.is_empty() {
        "no: it needs host functions that only an embedding application can supply".to_string()
    } else if !needs.wasi.is_empty() {
        "yes, with --wasi".to_string()
    } else {
        "yes".to_string()
    };
    let _ = writeln!(s, "runs with extism-run: {verdict}");
    s
}

fn module_text(s: &mut String, m: &Module) {
    let _ = writeln!(s, "module {} ({})", m.name, m.source);
    let _ = writeln!(s, "  size    {} bytes", m.size);
    let _ = writeln!(s, "  sha256  {}", m.sha256);

    let _ = writeln!(s, "  imports ({})", m.info.imports.len());
    let mut groups: Vec<(&str, Provider, Vec<&module_info::Import>)> = Vec::new();
    for import in &m.info.imports {
        match groups
            .iter_mut()
            .find(|(module, ..)| *module == import.module)
        {
            Some((.., items)) => items.push(import),
            None => groups.push((&import.module, import.provider, vec![import])),
        }
    }
    for (module, provider, items) in groups {
        let who = match provider {
            Provider::Extism => "provided by Extism",
            Provider::Wasi => "WASI, needs --wasi",
            Provider::Module => "another module of this plugin",
            Provider::Host => "host functions the host must supply",
        };
        let _ = writeln!(s, "    {module} ({who})");
        let width = items.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for i in items {
            let ty = match i.kind {
                "func" => i.ty.clone(),
                kind => format!("{kind} {}", i.ty).trim_end().to_string(),
            };
            let _ = writeln!(s, "      {:<width$}  {ty}", i.name);
        }
    }

    let _ = writeln!(s, "  exports ({})", m.info.exports.len());
    let width = m
        .info
        .exports
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    for e in &m.info.exports {
        let ty = format!("{} {}", e.kind, e.ty);
        let line = if e.plugin_function {
            format!("{:<width$}  {ty}  plugin function", e.name)
        } else {
            format!("{:<width$}  {ty}", e.name)
        };
        let _ = writeln!(s, "    {}", line.trim_end());
    }

    let _ = writeln!(s, "  memories ({})", m.info.memories.len());
    for mem in &m.info.memories {
        let mut line = format!("    {}: {}", mem.index, pages(mem));
        if let Some(import) = &mem.import {
            let _ = write!(line, ", imported from {import}");
        }
        if !mem.exports.is_empty() {
            let _ = write!(line, ", exported as {}", mem.exports.join(", "));
        }
        let _ = writeln!(s, "{line}");
    }
}

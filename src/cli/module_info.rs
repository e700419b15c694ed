//! What a module imports, exports and declares as memory, read with wasmparser without
//! compiling it; and who provides each import. Used by `inspect` and by the import check that
//! runs before a plugin is loaded.

use anyhow::{anyhow, Context, Result};
use extism::kernel::ENV_MODULE;
use serde::Serialize;
use wasmparser::{CompositeInnerType, ExternalKind, FuncType, Parser, Payload, TypeRef};

/// Who supplies an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `extism:host/env`: the Extism kernel and host functions.
    Extism,
    /// WASI preview 1 (`wasi_snapshot_preview1`, `wasi_unstable`): needs --wasi.
    Wasi,
    /// Another module of the same plugin.
    Module,
    /// A host function the embedding application must supply; extism-run has none.
    Host,
}

impl Provider {
    pub fn of(module: &str, plugin_modules: &[&str]) -> Provider {
        match module {
            ENV_MODULE => Provider::Extism,
            "wasi_snapshot_preview1" | "wasi_unstable" => Provider::Wasi,
            m if plugin_modules.contains(&m) => Provider::Module,
            _ => Provider::Host,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub ty: String,
    pub provider: Provider,
}

#[derive(Debug, Serialize)]
pub struct Export {
    pub name: String,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub ty: String,
    /// Callable with `Plugin::call`: a function of type `() -> ()` or `() -> i32`.
    pub plugin_function: bool,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub index: u32,
    /// In 64 KiB pages.
    pub min: u64,
    pub max: Option<u64>,
    pub memory64: bool,
    pub shared: bool,
    /// `module::name` when the memory is imported.
    pub import: Option<String>,
    pub exports: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct ModuleInfo {
    pub imports: Vec<Import>,
    pub exports: Vec<Export>,
    pub memories: Vec<Memory>,
}

/// Reads a binary or text module. `plugin_modules` are the names of the plugin's modules, so
/// imports between them are told apart from host functions.
pub fn parse(bytes: &[u8], plugin_modules: &[&str]) -> Result<ModuleInfo> {
    let binary = wat::parse_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
    let mut info = ModuleInfo::default();
    // Signatures by type index (None for non-function types), and the type of every function
    // and the memories in index order: imports first, then definitions.
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    for payload in Parser::new(0).parse_all(&binary) {
        match payload.context("invalid WebAssembly module")? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let (kind, ty) = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            funcs.push(t);
                            ("func", signature(&types, t))
                        }
                        TypeRef::Memory(m) => {
                            info.memories.push(memory(&info.memories, m));
                            let last = info.memories.last_mut().expect("just pushed");
                            last.import = Some(format!("{}::{}", import.module, import.name));
                            ("memory", pages(last))
                        }
                        TypeRef::Table(t) => ("table", format!("{}", t.element_type)),
                        TypeRef::Global(g) => ("global", global(g.content_type, g.mutable)),
                        TypeRef::Tag(_) => ("tag", String::new()),
                    };
                    info.imports.push(Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                        ty,
                        provider: Provider::of(import.module, plugin_modules),
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    funcs.push(t?);
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    let m = memory(&info.memories, m?);
                    info.memories.push(m);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let (kind, ty, plugin_function) = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => {
                            let t = funcs.get(export.index as usize).copied();
                            let f = t
                                .and_then(|t| types.get(t as usize))
                                .and_then(Option::as_ref);
                            let callable = f.is_some_and(|f| {
                                f.params().is_empty()
                                    && matches!(f.results(), [] | [wasmparser::ValType::I32])
                            });
                            ("func", f.map(describe).unwrap_or_default(), callable)
                        }
                        ExternalKind::Memory => {
                            if let Some(m) = info.memories.get_mut(export.index as usize) {
                                m.exports.push(export.name.to_string());
                            }
                            let ty = info
                                .memories
                                .get(export.index as usize)
                                .map(pages)
                                .unwrap_or_default();
                            ("memory", ty, false)
                        }
                        ExternalKind::Table => ("table", String::new(), false),
                        ExternalKind::Global => ("global", String::new(), false),
                        ExternalKind::Tag => ("tag", String::new(), false),
                    };
                    info.exports.push(Export {
                        name: export.name.to_string(),
                        kind,
                        ty,
                        plugin_function,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn signature(types: &[Option<FuncType>], index: u32) -> String {
    types
        .get(index as usize)
        .and_then(Option::as_ref)
        .map(describe)
        .unwrap_or_default()
}

/// `(i64, i32) -> i64`, the notation of the library's import errors.
fn describe(f: &FuncType) -> String {
    let list = |types: &[wasmparser::ValType]| {
        types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match f.results() {
        [] => format!("({})", list(f.params())),
        [one] => format!("({}) -> {one}", list(f.params())),
        many => format!("({}) -> ({})", list(f.params()), list(many)),
    }
}

fn memory(existing: &[Memory], m: wasmparser::MemoryType) -> Memory {
    Memory {
        index: existing.len() as u32,
        min: m.initial,
        max: m.maximum,
        memory64: m.memory64,
        shared: m.shared,
        import: None,
        exports: Vec::new(),
    }
}

/// `17 pages`, `1..16 pages`, `64-bit`/`shared` when they apply.
pub fn pages(m: &Memory) -> String {
    let mut s = match m.max {
        Some(max) => format!("{}..{max} pages", m.min),
        None => format!("{} pages", m.min),
    };
    if m.memory64 {
        s.push_str(", 64-bit");
    }
    if m.shared {
        s.push_str(", shared");
    }
    s
}

fn global(ty: wasmparser::ValType, mutable: bool) -> String {
    if mutable {
        format!("mut {ty}")
    } else {
        ty.to_string()
    }
}

/// What a plugin made of these modules needs from the host beyond Extism itself.
#[derive(Debug, Default, Serialize)]
pub struct Needs {
    /// WASI imports (`module::name`): the plugin needs --wasi.
    pub wasi: Vec<String>,
    /// Host function imports (`module::name (params) -> result`): only an embedding
    /// application can run the plugin.
    pub host_functions: Vec<String>,
}

impl Needs {
    pub fn of<'a>(modules: impl IntoIterator<Item = &'a ModuleInfo>) -> Needs {
        let mut needs = Needs::default();
        for import in modules.into_iter().flat_map(|m| &m.imports) {
            let item = format!("{}::{}", import.module, import.name);
            match import.provider {
                Provider::Wasi => needs.wasi.push(item),
                Provider::Host => needs
                    .host_functions
                    .push(format!("{item} {}", import.ty).trim_end().to_string()),
                Provider::Extism | Provider::Module => {}
            }
        }
        needs
    }
}

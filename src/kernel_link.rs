//! The kernel, linked statically into a guest module before it is compiled.
//!
//! A guest talks to the kernel through `extism:host/env` imports (`spec/kernel.md`). Kept as a
//! separate instance, every one of those is a call into another instance that pays wasmtime's
//! epoch check on entry, and PDKs move data with one such call per byte or per 8 bytes
//! (`input_load_u64`, `load_u64`, `store_u64`, ...; kernel.md §10.6). [`link`] instead
//! appends the kernel's functions, memories and globals to the guest module and
//!
//! - turns every import of a kernel function into a direct call of the appended function;
//! - replaces each direct call of the byte-moving functions with the instructions the kernel
//!   itself runs for them (`kernel/kernel.wat`), on the kernel's own memory and globals, and
//!   puts a bulk copy in front of the PDKs' loops of such calls (copy_loop.rs);
//! - inlines the guest's short `memory.copy`s of lengths known only at run time
//!   (small_copy.rs);
//! - neither of the two copy forms under fuel metering, where they would change what a call
//!   is charged and where it runs out;
//! - puts the kernel's imports (what it asks of the host: config and var values,
//!   src/host/) right after the guest's remaining imports, shifting the guest's functions;
//! - exports every kernel export under [`EXPORT_PREFIX`] for the host (kernel.rs), which the
//!   rest of the runtime hides from callers ([`is_private`]);
//! - adds a [`CALL`] entry for each export a plugin call can run (the kernel's `begin`, the
//!   export, the kernel's output and error slots), so that a call enters wasm once instead of
//!   three times (not under fuel metering, nor for the sampling profiler);
//! - exports the guest's start function as [`START`] instead of running it while
//!   instantiating;
//! - rebuilds the `name` section: the guest's names follow its functions to their new
//!   indices, and the kernel's functions are named `[kernel] NAME` ([`kernel_function_names`]),
//!   so backtraces and profiles name every frame.
//!
//! One instance per plugin then holds guest and kernel, so creating a plugin sets up one
//! instance instead of two, and guest memories keep copy-on-write initialisation (wasmtime only
//! uses it for modules that import no memory). Results, bounds checks and the kernel's
//! bookkeeping are exactly those of the kernel functions: a guest cannot tell the difference.
//!
//! This module must never change what a guest module means. Indices are shifted everywhere by
//! wasm-encoder's reencoder; anything this pass does not understand (a parse error, a component,
//! an unknown section) leaves the module alone, and the caller (engine.rs) falls back to the
//! original module with a separate kernel instance if the linked module does not compile. A
//! guest exporting a name under the prefix is refused ([`check_exports`]), so the kernel's
//! exports identify a linked module.

use std::collections::HashMap;

use anyhow::{bail, Result};
use wasm_encoder::{
    reencode::{self, Reencode},
    BlockType, ExportKind, Instruction, MemArg, ValType,
};
use wasmparser::{
    BinaryReader, CodeSectionReader, CompositeInnerType, ExternalKind, Operator, Parser, Payload,
    TypeRef,
};

use crate::{
    copy_loop::{KernelPlaces, Transfer},
    kernel::{ENV_MODULE, KERNEL_FUNCTIONS, KERNEL_HOST_MODULE, KERNEL_WASM},
};

/// Changes whenever this pass (or copy_loop.rs) emits different code for the same guest:
/// the disk cache keeps modules linked by another revision apart (disk_cache.rs).
pub const REVISION: u32 = 12;

/// Whether code written for a guest memory may use it: 32-bit, and of 64 KiB pages, since the
/// bounds checks the passes write compute its size as `memory.size << 16` (wasm_code.rs). A
/// host may enable custom page sizes in its own wasmtime configuration.
fn plain_memory(m: &wasmparser::MemoryType) -> bool {
    !m.memory64 && m.page_size_log2.is_none_or(|log2| log2 == 16)
}

/// The most locals (parameters included) a function may have: wasmparser's validator limit,
/// which every module wasmtime compiles meets.
const MAX_LOCALS: u64 = 50_000;

/// Names of the kernel's exports in a linked module start with this.
pub const EXPORT_PREFIX: &str = "extism-run:kernel/";

/// The guest's start function in a linked module: exported under this name instead of being
/// the module's start function, so that it runs once the host can serve the kernel to host
/// functions (plugin.rs calls it right after instantiating).
pub const START: &str = "extism-run:kernel/start";

/// True for the kernel exports of a linked module: never callable as plugin functions.
pub fn is_private(name: &str) -> bool {
    name.starts_with(EXPORT_PREFIX)
}

/// Refuses a guest module that exports a name under [`EXPORT_PREFIX`]: the host would take
/// such exports for the kernel.
pub fn check_exports<'a>(mut names: impl Iterator<Item = &'a str>) -> Result<()> {
    match names.find(|name| is_private(name)) {
        Some(name) => bail!(
            "the module exports `{name}`: export names starting with `{EXPORT_PREFIX}` are \
             reserved for the runtime"
        ),
        None => Ok(()),
    }
}

/// A linked module's entry for a plugin call of the export `NAME` is exported as `CALL` +
/// `NAME`: `(input length, call number) -> (input handle, result, output offset, output
/// length, error)`: the kernel's `begin`, the export (its result, 0 for one without), then
/// the kernel's output and error slots read in place (a call of the kernel's `end` would
/// check the epoch once more, so a cancel after the export returned could still fail the
/// call). A call enters wasm once. The host writes the input where `begin` puts it first
/// (kernel.rs).
pub const CALL: &str = "extism-run:kernel/call/";

/// The kernel's step before a call, and its output and error slots (kernel.wat).
const BEGIN: &str = "extism-run:begin";
const OUTPUT_OFFSET: &str = "extism-run:output_offset";
const OUTPUT_LENGTH: &str = "extism-run:output_length";
const ERROR: &str = "extism-run:error";

/// The kernel globals that inlined code reads (exported by kernel.wat under these names).
const INPUT_OFFSET: &str = "extism-run:input_offset";
const INPUT_LENGTH: &str = "extism-run:input_length";
const CLEAN: &str = "extism-run:clean";
/// The kernel's allocator, `(size, zero fresh space) -> handle`.
const ALLOC: &str = "extism-run:alloc";

type Signature = (Vec<wasmparser::ValType>, Vec<wasmparser::ValType>);

/// A kernel function whose calls are replaced by its body (or, for `alloc`, by a call of the
/// kernel's allocator itself rather than of its exported wrapper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hot {
    Alloc,
    InputLength,
    InputOffset,
    InputLoadU8,
    InputLoadU64,
    LoadU8,
    LoadU64,
    StoreU8,
    StoreU64,
}

impl Hot {
    /// The copy-loop direction of the kernel functions that move 8 bytes (copy_loop.rs).
    fn transfer(self) -> Option<Transfer> {
        match self {
            Hot::InputLoadU64 => Some(Transfer::InputToGuest),
            Hot::LoadU64 => Some(Transfer::KernelToGuest),
            Hot::StoreU64 => Some(Transfer::GuestToKernel),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Hot> {
        Some(match name {
            "alloc" => Hot::Alloc,
            "input_length" => Hot::InputLength,
            "input_offset" => Hot::InputOffset,
            "input_load_u8" => Hot::InputLoadU8,
            "input_load_u64" => Hot::InputLoadU64,
            "load_u8" => Hot::LoadU8,
            "load_u64" => Hot::LoadU64,
            "store_u8" => Hot::StoreU8,
            "store_u64" => Hot::StoreU64,
            _ => return None,
        })
    }
}

/// What a first pass learns about a module.
#[derive(Default)]
struct Layout {
    signatures: Vec<Option<Signature>>,
    /// `(module, name, type)` of every import, in order.
    imports: Vec<(String, String, TypeRef)>,
    imported_functions: u32,
    imported_memories: u32,
    imported_globals: u32,
    defined_memories: u32,
    /// Whether each memory (imported, then defined) is a 32-bit memory of 64 KiB pages
    /// ([`plain_memory`]).
    memories32: Vec<bool>,
    defined_globals: u32,
    /// Type index of each defined function, in order.
    defined_types: Vec<u32>,
    /// Exports: name, kind, index.
    exports: Vec<(String, ExternalKind, u32)>,
}

fn scan(wasm: &[u8]) -> wasmparser::Result<Option<Layout>> {
    let mut layout = Layout::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } => {}
            Payload::Version { .. } => return Ok(None),
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        layout.signatures.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => {
                                Some((f.params().to_vec(), f.results().to_vec()))
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => layout.imported_functions += 1,
                        TypeRef::Memory(m) => {
                            layout.imported_memories += 1;
                            layout.memories32.push(plain_memory(&m));
                        }
                        TypeRef::Global(_) => layout.imported_globals += 1,
                        TypeRef::Table(_) | TypeRef::Tag(_) => {}
                    }
                    layout
                        .imports
                        .push((import.module.into(), import.name.into(), import.ty));
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    layout.defined_types.push(ty?);
                }
            }
            // Counted item by item: the declared count is not checked against the section.
            Payload::MemorySection(reader) => {
                for memory in reader {
                    layout.memories32.push(plain_memory(&memory?));
                    layout.defined_memories += 1;
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    global?;
                    layout.defined_globals += 1;
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    layout
                        .exports
                        .push((export.name.into(), export.kind, export.index));
                }
            }
            Payload::CodeSectionStart { .. } => break,
            Payload::End(_) => break,
            _ => {}
        }
    }
    Ok(Some(layout))
}

/// What [`link`] adds beyond the kernel itself.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Fast forms of copies (copy_loop.rs, small_copy.rs). Not under fuel metering, where
    /// they would change what a call is charged and where fuel runs out.
    pub fast_copies: bool,
    /// A [`CALL`] entry for each export a plugin call can run. Not under fuel metering (the
    /// kernel's steps must run whatever fuel is left) nor for the sampling profiler (its
    /// stacks start at the export).
    pub call_entries: bool,
}

/// Links the kernel into `guest` (binary wasm). `Ok(None)` when this pass leaves the module
/// alone (see the module docs); an error when the guest imports a kernel function with the
/// wrong type (the message the linker would give) or exports a reserved name.
pub fn link(guest: &[u8], options: Options) -> Result<Option<Vec<u8>>> {
    let fast_copies = options.fast_copies;
    let (Ok(Some(g)), Ok(Some(k))) = (scan(guest), scan(KERNEL_WASM)) else {
        return Ok(None);
    };
    check_exports(g.exports.iter().map(|(name, _, _)| name.as_str()))?;
    if let Some((_, name, _)) = g.imports.iter().find(|(m, _, _)| m == KERNEL_HOST_MODULE) {
        bail!("Invalid import: `{KERNEL_HOST_MODULE}::{name}` is internal to the runtime");
    }
    let kernel_export = |name: &str, kind: ExternalKind| {
        k.exports
            .iter()
            .find(|(n, kd, _)| n == name && *kd == kind)
            .map(|(_, _, i)| *i)
    };

    // Function index space of the linked module: the guest's imports minus the kernel
    // functions, the kernel's imports (what it asks of the host), the guest's functions, then
    // the kernel's.
    let removed: u32 = g
        .imports
        .iter()
        .filter(|(m, n, ty)| is_kernel_function(m, n, ty))
        .count() as u32;
    let kept_imports = g.imported_functions - removed;
    let kernel_imports = k.imported_functions;
    let kernel_base = kept_imports + kernel_imports + g.defined_types.len() as u32;
    // The kernel's memories and globals follow the guest's.
    let memory_base = g.imported_memories + g.defined_memories;
    let global_base = g.imported_globals + g.defined_globals;
    let mut kernel_remap = KernelRemap {
        types: g.signatures.len() as u32,
        imports: kept_imports,
        imported: kernel_imports,
        functions: kernel_base,
        memories: memory_base,
        globals: global_base,
    };
    let mut functions = Vec::with_capacity(g.imported_functions as usize);
    let mut hot = HashMap::new();
    let mut transfers = HashMap::new();
    let mut kept = 0;
    for (module, name, ty) in &g.imports {
        let (TypeRef::Func(ty) | TypeRef::FuncExact(ty)) = *ty else {
            continue;
        };
        if !is_kernel_function(module, name, &TypeRef::Func(ty)) {
            functions.push(kept);
            kept += 1;
            continue;
        }
        let Some(index) = kernel_export(name, ExternalKind::Func) else {
            return Ok(None);
        };
        let want = g.signatures.get(ty as usize).cloned().flatten();
        let have = k
            .defined_types
            .get(index.wrapping_sub(kernel_imports) as usize)
            .and_then(|&t| k.signatures.get(t as usize).cloned().flatten());
        if want != have {
            bail!(
                "incompatible import type for `{ENV_MODULE}::{name}`: the module expects {}, \
                 the host provides {}",
                describe(want.as_ref()),
                describe(have.as_ref())
            );
        }
        if let Some(h) = Hot::from_name(name) {
            hot.insert(functions.len() as u32, h);
            if let Some(t) = h.transfer() {
                transfers.insert(functions.len() as u32, t);
            }
        }
        functions.push(kernel_remap.function(index));
    }

    let globals = [INPUT_OFFSET, INPUT_LENGTH, CLEAN]
        .map(|name| kernel_export(name, ExternalKind::Global).map(|i| global_base + i));
    let (
        [Some(in_off), Some(in_len), Some(clean)],
        [Some(out_off), Some(out_len), Some(error)],
        Some(memory),
        Some(alloc),
        Some(begin),
    ) = (
        globals,
        [OUTPUT_OFFSET, OUTPUT_LENGTH, ERROR]
            .map(|name| kernel_export(name, ExternalKind::Global).map(|i| global_base + i)),
        kernel_export("memory", ExternalKind::Memory),
        kernel_export(ALLOC, ExternalKind::Func),
        kernel_export(BEGIN, ExternalKind::Func),
    )
    else {
        return Ok(None);
    };
    let mut guest_remap = GuestRemap {
        functions,
        imported_functions: g.imported_functions,
        removed,
        added: kernel_imports,
        hot,
        transfers,
        memories32: g.memories32.clone(),
        fast_copies,
        after_const: false,
        params: g
            .defined_types
            .iter()
            .map(|&t| g.signatures.get(t as usize).cloned().flatten().map(|s| s.0))
            .collect(),
        next_body: 0,
        copy_loops: 0,
        small_copies: 0,
        limits: Limits {
            functions: g.imported_functions + g.defined_types.len() as u32,
            memories: memory_base,
            globals: global_base,
            types: g.signatures.len() as u32,
        },
        kernel: KernelState {
            alloc: kernel_remap.function(alloc),
            memory: memory_base + memory,
            in_off,
            in_len,
            clean,
        },
    };

    let mut entries = CallEntries {
        begin: kernel_remap.function(begin),
        slots: [out_off, out_len, error],
        exports: Vec::new(),
    };
    if options.call_entries {
        for (name, kind, index) in &g.exports {
            if !matches!(kind, ExternalKind::Func | ExternalKind::FuncExact) {
                continue;
            }
            let ty = match index.checked_sub(g.imported_functions) {
                Some(own) => g.defined_types.get(own as usize).copied(),
                None => g
                    .imports
                    .iter()
                    .filter_map(|(_, _, ty)| match ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => Some(*t),
                        _ => None,
                    })
                    .nth(*index as usize),
            };
            let Some(Some((params, results))) = ty.and_then(|t| g.signatures.get(t as usize))
            else {
                continue;
            };
            let returns_code = match results[..] {
                [] => false,
                [wasmparser::ValType::I32] => true,
                _ => continue,
            };
            if params.is_empty() {
                let Ok(func) = guest_remap.function_index(*index) else {
                    continue;
                };
                entries.exports.push((name.clone(), func, returns_code));
            }
        }
    }

    match assemble(guest, &k, &mut guest_remap, &mut kernel_remap, &entries) {
        Ok(bytes) => {
            tracing::debug!(
                copy_loops = guest_remap.copy_loops,
                small_copies = guest_remap.small_copies,
                call_entries = entries.exports.len(),
                "kernel linked into the module"
            );
            Ok(Some(bytes))
        }
        Err(e) => {
            tracing::debug!("kernel not linked into the module: {e}");
            Ok(None)
        }
    }
}

fn is_kernel_function(module: &str, name: &str, ty: &TypeRef) -> bool {
    module == ENV_MODULE
        && KERNEL_FUNCTIONS.contains(&name)
        && matches!(ty, TypeRef::Func(_) | TypeRef::FuncExact(_))
}

/// `(i64, i32) -> i64` style text, as every import check spells types (signature.rs).
fn describe(sig: Option<&Signature>) -> String {
    let Some((params, results)) = sig else {
        return "a non-function type".into();
    };
    let text = |v: &[wasmparser::ValType]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    crate::signature::signature_text(&text(params), &text(results))
}

/// The linked module's sections, filled from the guest and then the kernel.
#[derive(Default)]
struct Sections {
    types: wasm_encoder::TypeSection,
    imports: wasm_encoder::ImportSection,
    functions: wasm_encoder::FunctionSection,
    tables: Option<wasm_encoder::TableSection>,
    memories: wasm_encoder::MemorySection,
    tags: Option<wasm_encoder::TagSection>,
    globals: wasm_encoder::GlobalSection,
    exports: wasm_encoder::ExportSection,
    start: Option<u32>,
    elements: Option<wasm_encoder::ElementSection>,
    data_count: Option<u32>,
    code: wasm_encoder::CodeSection,
    data: Option<wasm_encoder::DataSection>,
    /// Custom sections, encoded, in their original order (placed at the end).
    custom: Vec<u8>,
    /// The guest's `name` section: (offset of its data in the guest, data).
    guest_names: Option<(usize, Vec<u8>)>,
}

type ReResult<T = ()> = Result<T, reencode::Error<&'static str>>;

/// The [`CALL`] entries to add: the kernel's `begin` and output and error globals, and for
/// each export its name, linked function index and whether it returns a result.
struct CallEntries {
    begin: u32,
    slots: [u32; 3],
    exports: Vec<(String, u32, bool)>,
}

fn assemble(
    guest: &[u8],
    k: &Layout,
    gr: &mut GuestRemap,
    kr: &mut KernelRemap,
    entries: &CallEntries,
) -> ReResult<Vec<u8>> {
    let mut s = Sections::default();
    add_module(guest, gr, &mut s, true)?;
    add_module(KERNEL_WASM, kr, &mut s, false)?;
    // The call entries follow the kernel's functions, with a type of their own.
    let mut entry_names = Vec::new();
    if !entries.exports.is_empty() {
        let ty = kr.types + k.signatures.len() as u32;
        s.types.ty().function(
            [ValType::I64, ValType::I64],
            [
                ValType::I64,
                ValType::I32,
                ValType::I64,
                ValType::I64,
                ValType::I64,
            ],
        );
        let first = kr.functions + k.defined_types.len() as u32;
        for (i, (name, func, returns_code)) in entries.exports.iter().enumerate() {
            let index = first + i as u32;
            s.functions.function(ty);
            let mut body = wasm_encoder::Function::new([]);
            body.instruction(&Instruction::LocalGet(0))
                .instruction(&Instruction::LocalGet(1))
                .instruction(&Instruction::Call(entries.begin))
                .instruction(&Instruction::Call(*func));
            if !returns_code {
                body.instruction(&Instruction::I32Const(0));
            }
            for global in entries.slots {
                body.instruction(&Instruction::GlobalGet(global));
            }
            body.instruction(&Instruction::End);
            s.code.function(&body);
            s.exports
                .export(&format!("{CALL}{name}"), ExportKind::Func, index);
            entry_names.push((index, format!("[kernel] call {name}")));
        }
    }
    if let Some(start) = s.start.take() {
        s.exports.export(START, ExportKind::Func, start);
    }
    for (name, kind, index) in &k.exports {
        let (kind, index) = match kind {
            ExternalKind::Func | ExternalKind::FuncExact => {
                (ExportKind::Func, kr.function_index(*index)?)
            }
            ExternalKind::Memory => (ExportKind::Memory, kr.memory_index(*index)?),
            ExternalKind::Global => (ExportKind::Global, kr.global_index(*index)?),
            ExternalKind::Table | ExternalKind::Tag => continue,
        };
        s.exports
            .export(&format!("{EXPORT_PREFIX}{name}"), kind, index);
    }

    let mut module = wasm_encoder::Module::new();
    module.section(&s.types);
    module.section(&s.imports);
    module.section(&s.functions);
    if let Some(t) = &s.tables {
        module.section(t);
    }
    module.section(&s.memories);
    if let Some(t) = &s.tags {
        module.section(t);
    }
    module.section(&s.globals);
    module.section(&s.exports);
    if let Some(e) = &s.elements {
        module.section(e);
    }
    if let Some(count) = s.data_count {
        module.section(&wasm_encoder::DataCountSection { count });
    }
    module.section(&s.code);
    if let Some(d) = &s.data {
        module.section(d);
    }
    module.section(&names(s.guest_names.as_ref(), gr, kr, entry_names));
    let mut bytes = module.finish();
    // Custom sections may follow the last section.
    bytes.extend_from_slice(&s.custom);
    Ok(bytes)
}

/// The linked module's `name` section: the guest's subsections with function indices moved
/// (names of removed kernel imports dropped), and the kernel's function names added. A guest
/// subsection that does not parse ends the guest's part (names are only a help); the kernel's
/// names are always there.
fn names(
    guest: Option<&(usize, Vec<u8>)>,
    gr: &mut GuestRemap,
    kr: &KernelRemap,
    extra: Vec<(u32, String)>,
) -> wasm_encoder::NameSection {
    fn reader((offset, data): &(usize, Vec<u8>)) -> wasmparser::NameSectionReader<'_> {
        wasmparser::NameSectionReader::new(BinaryReader::new(data, *offset))
    }
    let mut functions: Vec<(u32, String)> = kernel_function_names()
        .iter()
        .enumerate()
        .map(|(i, name)| (kr.function(i as u32), name.clone()))
        .chain(extra)
        .collect();
    let mut module = None;
    // Subsections must come in order of id: module and functions first, the rest after.
    if let Some(guest) = guest {
        let first = (|| -> ReResult {
            for sub in reader(guest) {
                match sub? {
                    wasmparser::Name::Module { name, .. } => module = Some(name.to_string()),
                    wasmparser::Name::Function(map) => {
                        for naming in map {
                            let naming = naming?;
                            if let Some(index) = gr.named_function(naming.index) {
                                functions.push((index, naming.name.to_string()));
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        if let Err(e) = first {
            tracing::debug!("the guest's function names are left out: {e}");
        }
    }
    let mut section = wasm_encoder::NameSection::new();
    if let Some(module) = &module {
        section.module(module);
    }
    functions.sort_by_key(|(index, _)| *index);
    functions.dedup_by_key(|(index, _)| *index);
    let mut map = wasm_encoder::NameMap::new();
    for (index, name) in &functions {
        map.append(*index, name);
    }
    section.functions(&map);
    if let Some(guest) = guest {
        let rest = (|| -> ReResult {
            for sub in reader(guest) {
                match sub? {
                    wasmparser::Name::Module { .. } | wasmparser::Name::Function(_) => {}
                    wasmparser::Name::Local(map) => section.locals(&indirect_names(map, gr)?),
                    wasmparser::Name::Label(map) => section.labels(&indirect_names(map, gr)?),
                    other => {
                        reencode::utils::parse_custom_name_subsection(gr, &mut section, other)?
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = rest {
            tracing::debug!("part of the guest's name section is left out: {e}");
        }
    }
    section
}

/// A guest name map keyed by function index (locals, labels), moved to the linked indices.
fn indirect_names(
    map: wasmparser::IndirectNameMap<'_>,
    gr: &mut GuestRemap,
) -> ReResult<wasm_encoder::IndirectNameMap> {
    let mut moved = wasm_encoder::IndirectNameMap::new();
    for naming in map {
        let naming = naming?;
        let Some(index) = gr.named_function(naming.index) else {
            continue;
        };
        let mut names = wasm_encoder::NameMap::new();
        for name in naming.names {
            let name = name?;
            names.append(name.index, name.name);
        }
        moved.append(index, &names);
    }
    Ok(moved)
}

/// Names of the kernel's functions by the kernel's own index (its imports first), as the
/// linked module's name section gives them: `[kernel] ` and the kernel's own name for it
/// (kernel.wat), else the export name guests import (`free`), else its runtime export name;
/// `[host] NAME` for an import.
pub(crate) fn kernel_function_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let Ok(Some(k)) = scan(KERNEL_WASM) else {
            return Vec::new();
        };
        let imported = k.imported_functions as usize;
        let count = imported + k.defined_types.len();
        let mut public: Vec<Option<String>> = vec![None; count];
        let mut runtime: Vec<Option<String>> = vec![None; count];
        for (name, kind, index) in &k.exports {
            if !matches!(kind, ExternalKind::Func | ExternalKind::FuncExact) {
                continue;
            }
            let slot = *index as usize;
            let slots = match name.strip_prefix("extism-run:") {
                Some(_) => &mut runtime,
                None => &mut public,
            };
            if let Some(s) = slots.get_mut(slot) {
                s.get_or_insert_with(|| name.clone());
            }
        }
        let mut own: Vec<Option<String>> = vec![None; count];
        for payload in Parser::new(0).parse_all(KERNEL_WASM) {
            let Ok(Payload::CustomSection(section)) = payload else {
                continue;
            };
            let wasmparser::KnownCustom::Name(reader) = section.as_known() else {
                continue;
            };
            for sub in reader.into_iter().flatten() {
                if let wasmparser::Name::Function(map) = sub {
                    for naming in map.into_iter().flatten() {
                        if let Some(s) = own.get_mut(naming.index as usize) {
                            *s = Some(naming.name.to_string());
                        }
                    }
                }
            }
        }
        let mut names: Vec<String> = k
            .imports
            .iter()
            .filter(|(_, _, ty)| matches!(ty, TypeRef::Func(_) | TypeRef::FuncExact(_)))
            .map(|(_, name, _)| format!("[host] {name}"))
            .collect();
        for i in imported..count {
            let base = own[i]
                .clone()
                .or_else(|| public[i].clone())
                .or_else(|| runtime[i].clone())
                .unwrap_or_else(|| format!("function {i}"));
            let mut name = format!("[kernel] {base}");
            // The `alloc` export wraps the allocator of the same name: keep frames apart.
            if names.contains(&name) {
                name.push_str(" (export)");
            }
            names.push(name);
        }
        names
    })
}

/// Adds one module's sections (`is_guest`: the guest, whose kernel imports are dropped and
/// whose custom sections are kept; otherwise the kernel).
fn add_module(
    wasm: &[u8],
    r: &mut impl Reencode<Error = &'static str>,
    s: &mut Sections,
    is_guest: bool,
) -> ReResult {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { .. } => {}
            Payload::TypeSection(reader) => r.parse_type_section(&mut s.types, reader)?,
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    if is_guest && is_kernel_function(import.module, import.name, &import.ty) {
                        continue;
                    }
                    s.imports
                        .import(import.module, import.name, r.entity_type(import.ty)?);
                }
            }
            Payload::FunctionSection(reader) => {
                r.parse_function_section(&mut s.functions, reader)?
            }
            Payload::TableSection(reader) => {
                r.parse_table_section(s.tables.get_or_insert_with(Default::default), reader)?
            }
            Payload::MemorySection(reader) => r.parse_memory_section(&mut s.memories, reader)?,
            Payload::TagSection(reader) => {
                r.parse_tag_section(s.tags.get_or_insert_with(Default::default), reader)?
            }
            Payload::GlobalSection(reader) => r.parse_global_section(&mut s.globals, reader)?,
            Payload::ExportSection(reader) => {
                if is_guest {
                    r.parse_export_section(&mut s.exports, reader)?
                }
            }
            Payload::StartSection { func, .. } => s.start = Some(r.start_section(func)?),
            Payload::ElementSection(reader) => {
                r.parse_element_section(s.elements.get_or_insert_with(Default::default), reader)?
            }
            Payload::DataCountSection { count, .. } => s.data_count = Some(r.data_count(count)?),
            Payload::DataSection(reader) => {
                r.parse_data_section(s.data.get_or_insert_with(Default::default), reader)?
            }
            Payload::CodeSectionStart { range, .. } => {
                let bytes = wasm
                    .get(range.clone())
                    .ok_or(reencode::Error::InvalidCodeSectionSize)?;
                let reader = CodeSectionReader::new(BinaryReader::new(bytes, range.start))?;
                r.parse_code_section(&mut s.code, reader)?;
            }
            Payload::CodeSectionEntry(_) => {}
            Payload::CustomSection(section) if is_guest && section.name() == "name" => {
                s.guest_names = Some((section.data_offset(), section.data().to_vec()));
            }
            Payload::CustomSection(section) => {
                if is_guest {
                    let mut scratch = wasm_encoder::Module::new();
                    r.parse_custom_section(&mut scratch, section)?;
                    // Drop the 8-byte header: what remains is the encoded section.
                    s.custom.extend_from_slice(&scratch.as_slice()[8..]);
                }
            }
            Payload::End(_) => break,
            _ => {
                return Err(reencode::Error::UserError(
                    "a section this pass does not handle",
                ))
            }
        }
    }
    Ok(())
}

/// Where the kernel state that inlined code uses ended up in the linked module.
struct KernelState {
    alloc: u32,
    memory: u32,
    in_off: u32,
    in_len: u32,
    clean: u32,
}

/// Index mapping for the guest's code: functions move (kernel imports removed), everything
/// else keeps its index. An index beyond the guest's own is refused, never mapped: in the
/// linked module it would name a kernel function, memory, global or type, so a module that is
/// invalid on its own could reach kernel internals.
struct GuestRemap {
    /// New index of each imported function.
    functions: Vec<u32>,
    imported_functions: u32,
    removed: u32,
    /// How many functions the kernel imports: they come before the guest's own.
    added: u32,
    /// How many functions (imported and defined), memories, globals and types the guest has.
    limits: Limits,
    /// Inlined kernel functions, by the guest's original function index.
    hot: HashMap<u32, Hot>,
    /// The kernel calls that copy loops are made of (copy_loop.rs), by the guest's index.
    transfers: HashMap<u32, Transfer>,
    /// Whether each guest memory is a 32-bit memory of 64 KiB pages ([`plain_memory`]).
    memories32: Vec<bool>,
    /// Whether copies get fast forms (copy_loop.rs, small_copy.rs): not under fuel metering,
    /// where they would change what a call is charged (wasmtime charges a `memory.copy` by
    /// its length, an inlined copy by its instructions) and where fuel runs out.
    fast_copies: bool,
    /// Whether the operator written last was an `i32.const`: a copy of constant length is
    /// left to wasmtime, which expands the short ones itself (no runtime call, no checks).
    after_const: bool,
    /// Parameter types of each defined function.
    params: Vec<Option<Vec<wasmparser::ValType>>>,
    /// Index among defined functions of the next function body.
    next_body: usize,
    /// How many loops got a bulk copy in front (copy_loop.rs).
    copy_loops: u32,
    /// How many `memory.copy`s got an inline short form (small_copy.rs).
    small_copies: u32,
    kernel: KernelState,
}

struct Limits {
    functions: u32,
    memories: u32,
    globals: u32,
    types: u32,
}

fn within(index: u32, limit: u32, what: &'static str) -> ReResult<u32> {
    match index < limit {
        true => Ok(index),
        false => Err(reencode::Error::UserError(what)),
    }
}

impl GuestRemap {
    /// The memory of a copy within one 32-bit guest memory whose length is not a constant
    /// (`after_const`: the operator before it was an `i32.const`), when copies get fast forms
    /// (small_copy.rs inlines the short ones).
    fn small_copy(&self, op: &Operator<'_>, after_const: bool) -> Option<u32> {
        match *op {
            Operator::MemoryCopy { dst_mem, src_mem }
                if self.fast_copies
                    && !after_const
                    && dst_mem == src_mem
                    && self.memories32.get(dst_mem as usize).copied() == Some(true) =>
            {
                Some(dst_mem)
            }
            _ => None,
        }
    }

    /// Where a guest function's name goes in the linked module: `None` for a kernel import
    /// (the kernel function it became is named as the kernel's) or an index out of range.
    fn named_function(&mut self, func: u32) -> Option<u32> {
        let kept_imports = self.imported_functions - self.removed;
        match self.function_index(func) {
            Ok(index) if func < self.imported_functions && index >= kept_imports => None,
            Ok(index) => Some(index),
            Err(_) => None,
        }
    }
}

impl Reencode for GuestRemap {
    type Error = &'static str;

    fn memory_index(&mut self, memory: u32) -> ReResult<u32> {
        within(memory, self.limits.memories, "memory index out of range")
    }

    fn global_index(&mut self, global: u32) -> ReResult<u32> {
        within(global, self.limits.globals, "global index out of range")
    }

    fn type_index(&mut self, ty: u32) -> ReResult<u32> {
        within(ty, self.limits.types, "type index out of range")
    }

    fn function_index(&mut self, func: u32) -> ReResult<u32> {
        within(func, self.limits.functions, "function index out of range")?;
        if func < self.imported_functions {
            return self
                .functions
                .get(func as usize)
                .copied()
                .ok_or(reencode::Error::UserError("function index out of range"));
        }
        Ok(func - self.removed + self.added)
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> ReResult {
        let defined = self.next_body;
        self.next_body += 1;
        let hot_call = |hot: &HashMap<u32, Hot>, op: &Operator<'_>| match op {
            Operator::Call { function_index } => hot.get(function_index).copied(),
            _ => None,
        };
        let mut reader = func.get_operators_reader()?;
        let mut rewrite = false;
        let mut after_const = false;
        while !reader.eof() {
            let op = reader.read()?;
            if hot_call(&self.hot, &op).is_some() || self.small_copy(&op, after_const).is_some() {
                rewrite = true;
                break;
            }
            after_const = matches!(op, Operator::I32Const { .. });
        }
        if !rewrite {
            return reencode::utils::parse_function_body(self, code, func);
        }

        // Scratch locals after the function's own: two i64 and one i32 for inlined kernel
        // code, one i64 for copy loops, three i32 (and the first two i64) for short copies.
        let mut locals = Vec::new();
        let params =
            self.params
                .get(defined)
                .cloned()
                .flatten()
                .ok_or(reencode::Error::UserError(
                    "a function without a function type",
                ))?;
        let mut local_types = params;
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            locals.push((count, self.val_type(ty)?));
            // Not validated yet: wasmparser's reader only stops at 2^32 locals, its validator
            // at MAX_LOCALS. Refused here before the list is built (the module then compiles
            // unlinked, and the validator reports it).
            let total = (local_types.len() as u64).saturating_add(count.into());
            if total > MAX_LOCALS {
                return Err(reencode::Error::UserError("too many locals"));
            }
            local_types.extend(std::iter::repeat_n(ty, count as usize));
        }
        // At most MAX_LOCALS: the scratch locals after them fit in u32.
        let scratch = local_types.len() as u32;
        locals.push((2, ValType::I64));
        locals.push((1, ValType::I32));
        locals.push((1, ValType::I64));
        locals.push((3, ValType::I32));
        let mut f = wasm_encoder::Function::new(locals);
        let mut reader = func.get_operators_reader()?;
        // Operators read ahead (a loop body that did not qualify) come back through here.
        let mut queue = std::collections::VecDeque::new();
        while let Some(op) = next_op(&mut queue, &mut reader) {
            let op = op?;
            if !self.fast_copies
                || !matches!(
                    op,
                    Operator::Loop {
                        blockty: wasmparser::BlockType::Empty
                    }
                )
            {
                self.emit(&mut f, op, scratch)?;
                continue;
            }
            // A loop whose body copy_loop.rs may accept is read up to its end, or until it is
            // longer than any it accepts (a hostile body of millions of additions would
            // otherwise be held in memory whole, before validation).
            let mut body = Vec::new();
            let mut closed = false;
            while let Some(inner) = next_op(&mut queue, &mut reader) {
                let inner = inner?;
                let more = crate::copy_loop::may_contain(&inner)
                    && body.len() < crate::copy_loop::MAX_BODY;
                closed = matches!(inner, Operator::End);
                body.push(inner);
                if !more {
                    break;
                }
            }
            let fast = match closed {
                true => crate::copy_loop::fast_path(
                    &body[..body.len() - 1],
                    &crate::copy_loop::Function {
                        locals: &local_types,
                        transfers: &self.transfers,
                        memories32: &self.memories32,
                        scratch: scratch + 3,
                        kernel: self.kernel.places(),
                    },
                ),
                false => None,
            };
            match fast {
                Some(prefix) => {
                    self.copy_loops += 1;
                    for i in &prefix {
                        f.instruction(i);
                    }
                    self.emit(&mut f, op, scratch)?;
                    for inner in body {
                        self.emit(&mut f, inner, scratch)?;
                    }
                    f.instruction(&Instruction::End);
                }
                None => {
                    self.emit(&mut f, op, scratch)?;
                    for inner in body.into_iter().rev() {
                        queue.push_front(inner);
                    }
                }
            }
        }
        code.function(&f);
        Ok(())
    }
}

impl GuestRemap {
    /// Writes one guest operator: a call of a hot kernel function as the kernel's own code
    /// (locals `scratch`.. are its scratch), anything else reencoded.
    fn emit(&mut self, f: &mut wasm_encoder::Function, op: Operator<'_>, scratch: u32) -> ReResult {
        let after_const = std::mem::replace(
            &mut self.after_const,
            matches!(op, Operator::I32Const { .. }),
        );
        if let Some(memory) = self.small_copy(&op, after_const) {
            let scratch = crate::small_copy::Scratch {
                i32s: scratch + 4,
                i64s: scratch,
            };
            self.small_copies += 1;
            for i in crate::small_copy::inline(memory, scratch) {
                f.instruction(&i);
            }
            return Ok(());
        }
        let hot = match &op {
            Operator::Call { function_index } => self.hot.get(function_index).copied(),
            _ => None,
        };
        match hot {
            Some(hot) => {
                for i in self.kernel.inline(hot, scratch) {
                    f.instruction(&i);
                }
            }
            None => {
                f.instruction(&self.instruction(op)?);
            }
        }
        Ok(())
    }
}

/// The next operator: one read ahead and put back, else the reader's next.
fn next_op<'a>(
    queue: &mut std::collections::VecDeque<Operator<'a>>,
    reader: &mut wasmparser::OperatorsReader<'a>,
) -> Option<wasmparser::Result<Operator<'a>>> {
    match queue.pop_front() {
        Some(op) => Some(Ok(op)),
        None if reader.eof() => None,
        None => Some(reader.read()),
    }
}

/// Index mapping for the kernel's code: everything moves past the guest's.
struct KernelRemap {
    types: u32,
    /// Where the kernel's imports go (after the guest's), and how many there are.
    imports: u32,
    imported: u32,
    /// Where the kernel's own functions go (after the guest's).
    functions: u32,
    memories: u32,
    globals: u32,
}

impl KernelRemap {
    /// The linked index of the kernel's function `func`.
    fn function(&self, func: u32) -> u32 {
        match func.checked_sub(self.imported) {
            Some(own) => self.functions + own,
            None => self.imports + func,
        }
    }
}

impl Reencode for KernelRemap {
    type Error = &'static str;

    fn type_index(&mut self, ty: u32) -> ReResult<u32> {
        Ok(self.types + ty)
    }
    fn function_index(&mut self, func: u32) -> ReResult<u32> {
        Ok(self.function(func))
    }
    fn memory_index(&mut self, memory: u32) -> ReResult<u32> {
        Ok(self.memories + memory)
    }
    fn global_index(&mut self, global: u32) -> ReResult<u32> {
        Ok(self.globals + global)
    }
}

impl KernelState {
    fn places(&self) -> KernelPlaces {
        KernelPlaces {
            memory: self.memory,
            in_off: self.in_off,
            in_len: self.in_len,
            clean: self.clean,
        }
    }

    /// The kernel's code for `hot` (kernel/kernel.wat), taking its arguments from the stack.
    /// Locals `s` and `s + 1` (i64) and `s + 2` (i32) are scratch.
    fn inline(&self, hot: Hot, s: u32) -> Vec<Instruction<'static>> {
        use Instruction as I;
        let (a, b, c) = (s, s + 1, s + 2);
        let arg = MemArg {
            offset: 0,
            align: 0,
            memory_index: self.memory,
        };
        let (in_off, in_len, clean) = (self.in_off, self.in_len, self.clean);
        let mem_bytes = crate::wasm_code::memory_bytes(self.memory);
        let mut out = Vec::with_capacity(24);
        match hot {
            Hot::Alloc => out.extend([I::I32Const(1), I::Call(self.alloc)]),
            Hot::InputLength => out.push(I::GlobalGet(in_len)),
            Hot::InputOffset => out.push(I::GlobalGet(in_off)),
            // i < len
            Hot::InputLoadU8 => out.extend([
                I::LocalSet(a),
                I::LocalGet(a),
                I::GlobalGet(in_len),
                I::I64LtU,
                I::If(BlockType::Result(ValType::I32)),
                I::GlobalGet(in_off),
                I::LocalGet(a),
                I::I64Add,
                I::I32WrapI64,
                I::I32Load8U(arg),
                I::Else,
                I::I32Const(0),
                I::End,
            ]),
            // len >= 8 && i <= len - 8
            Hot::InputLoadU64 => out.extend([
                I::LocalSet(a),
                I::GlobalGet(in_len),
                I::I64Const(8),
                I::I64GeU,
                I::LocalGet(a),
                I::GlobalGet(in_len),
                I::I64Const(8),
                I::I64Sub,
                I::I64LeU,
                I::I32And,
                I::If(BlockType::Result(ValType::I64)),
                I::GlobalGet(in_off),
                I::LocalGet(a),
                I::I64Add,
                I::I32WrapI64,
                I::I64Load(arg),
                I::Else,
                I::I64Const(0),
                I::End,
            ]),
            // p < size
            Hot::LoadU8 => {
                out.extend([I::LocalSet(a), I::LocalGet(a)]);
                out.extend(mem_bytes);
                out.extend([
                    I::I64LtU,
                    I::If(BlockType::Result(ValType::I32)),
                    I::LocalGet(a),
                    I::I32WrapI64,
                    I::I32Load8U(arg),
                    I::Else,
                    I::I32Const(0),
                    I::End,
                ]);
            }
            // p <= size - 8
            Hot::LoadU64 => {
                out.extend([I::LocalSet(a), I::LocalGet(a)]);
                out.extend(mem_bytes);
                out.extend([
                    I::I64Const(8),
                    I::I64Sub,
                    I::I64LeU,
                    I::If(BlockType::Result(ValType::I64)),
                    I::LocalGet(a),
                    I::I32WrapI64,
                    I::I64Load(arg),
                    I::Else,
                    I::I64Const(0),
                    I::End,
                ]);
            }
            // p < size; a store at or above $clean raises it to p + 1
            Hot::StoreU8 => {
                out.extend([I::LocalSet(c), I::LocalSet(a), I::LocalGet(a)]);
                out.extend(mem_bytes);
                out.extend([
                    I::I64LtU,
                    I::If(BlockType::Empty),
                    I::LocalGet(a),
                    I::I32WrapI64,
                    I::LocalGet(c),
                    I::I32Store8(arg),
                    I::LocalGet(a),
                    I::GlobalGet(clean),
                    I::I64GeU,
                    I::If(BlockType::Empty),
                    I::LocalGet(a),
                    I::I64Const(1),
                    I::I64Add,
                    I::GlobalSet(clean),
                    I::End,
                    I::End,
                ]);
            }
            // p <= size - 8; p + 8 > $clean raises it to p + 8
            Hot::StoreU64 => {
                out.extend([I::LocalSet(b), I::LocalSet(a), I::LocalGet(a)]);
                out.extend(mem_bytes);
                out.extend([
                    I::I64Const(8),
                    I::I64Sub,
                    I::I64LeU,
                    I::If(BlockType::Empty),
                    I::LocalGet(a),
                    I::I32WrapI64,
                    I::LocalGet(b),
                    I::I64Store(arg),
                    I::LocalGet(a),
                    I::I64Const(8),
                    I::I64Add,
                    I::LocalTee(b),
                    I::GlobalGet(clean),
                    I::I64GtU,
                    I::If(BlockType::Empty),
                    I::LocalGet(b),
                    I::GlobalSet(clean),
                    I::End,
                    I::End,
                ]);
            }
        }
        out
    }
}

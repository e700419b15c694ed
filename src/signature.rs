//! Function types as text for error messages: `(i64, i32) -> i64`.
//!
//! One spelling for every message that names a signature (import checks in compiled.rs,
//! kernel_link.rs and plugin.rs). It formats only; it never decides whether types match.

use wasmtime::ExternType;

/// `(i64, i32) -> i64` style text for an import's type.
pub(crate) fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => signature_text(
            &f.params().map(|t| t.to_string()).collect::<Vec<_>>(),
            &f.results().map(|t| t.to_string()).collect::<Vec<_>>(),
        ),
        ExternType::Memory(_) => "memory".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// `(i64, i32) -> i64` style text for a function signature.
pub(crate) fn signature_text(params: &[String], results: &[String]) -> String {
    let params = params.join(", ");
    match results {
        [] => format!("({params})"),
        [one] => format!("({params}) -> {one}"),
        _ => format!("({params}) -> ({})", results.join(", ")),
    }
}

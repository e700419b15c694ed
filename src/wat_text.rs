//! Telling WebAssembly text (WAT) from other text.
//!
//! Used where bytes may be a module in text form: deciding between a module and a manifest
//! (manifest.rs) and before compiling (engine.rs). It only looks at the start of the text;
//! parsing is the `wat` crate's.

/// True for WebAssembly text: a leading comment, or `(` followed by the keyword `module`.
/// Unlike upstream, leading whitespace is allowed.
pub(crate) fn is_wat(text: &str) -> bool {
    let t = text.trim_start();
    if t.starts_with(";;") || t.starts_with("(;") {
        return true;
    }
    t.strip_prefix('(')
        .map(|rest| {
            let rest = rest.trim_start();
            rest.starts_with("module")
                && !rest[6..].starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wat_detection() {
        assert!(is_wat("(module)"));
        assert!(is_wat("  \n( module (func))"));
        assert!(is_wat(";; comment\n(module)"));
        assert!(!is_wat("(modules)"));
        assert!(!is_wat("{\"wasm\": []}"));
    }
}

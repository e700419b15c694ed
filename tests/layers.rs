//! The core module graph (src/*.rs and src/host/) has no cycles, and ARCHITECTURE.md's layer
//! list is ordered so that each module uses only modules listed below it.
//!
//! Reads the sources as text: comments and string literals are dropped, then every
//! `crate::NAME` (also inside `use crate::{...}` groups) becomes an edge to module NAME, or to
//! the module a root re-export of lib.rs comes from. Items lib.rs defines itself (constants)
//! and re-exports of other crates are not edges. The C API (src/sdk/) and the command line sit
//! above the core and are not nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source text with comments, string and char literals replaced by spaces (lifetimes kept).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if at(i) == 'r'
            && (at(i + 1) == '"' || at(i + 1) == '#')
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
        {
            // Raw string: r"..." or r#"..."# (also br"...").
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if at(i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if at(i) == '\'' && at(i + 2) == '\'' {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The first path segment of every `crate::` path in `code` (groups expanded).
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(pos) = code[from..].find("crate::") {
        let start = from + pos;
        from = start + "crate::".len();
        let before = start.checked_sub(1).map(|k| bytes[k]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
            continue;
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's top level at commas; each item's first segment is a name.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|s| !s.is_empty() && s != "self");
    found
}

fn first_segment(s: &str) -> String {
    s.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Module names declared in lib.rs (`mod x;`, `pub mod x;`), and root re-export name → module.
fn lib_rs() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let code = code_only(&std::fs::read_to_string(root().join("src/lib.rs")).unwrap());
    let mut modules = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            modules.insert(name.trim().to_string());
        }
    }
    let mut reexports = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(path) = stmt
            .trim()
            .rsplit("pub use ")
            .next()
            .filter(|_| stmt.contains("pub use "))
        else {
            continue;
        };
        let (module, names) = path.split_once("::").unwrap_or((path, ""));
        if !modules.contains(module.trim()) {
            continue;
        }
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.rsplit("::").next().unwrap().trim();
            let name = name.rsplit(" as ").next().unwrap().trim();
            if !name.is_empty() {
                reexports.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    (modules, reexports)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The core module graph: module → modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let (mut modules, reexports) = lib_rs();
    modules.remove("sdk");
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(root().join("src")).unwrap();
        let first = rel.iter().next().unwrap().to_str().unwrap();
        let module = first.strip_suffix(".rs").unwrap_or(first);
        if !modules.contains(module) {
            continue; // lib.rs, main.rs, cli/, sdk/
        }
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for name in crate_paths(&code) {
            let target = if modules.contains(&name) {
                Some(name)
            } else {
                reexports.get(&name).cloned()
            };
            if let Some(target) = target.filter(|t| t != module) {
                assert!(
                    target != "sdk",
                    "{}: core code uses the C API (crate::sdk)",
                    rel.display()
                );
                graph.get_mut(module).unwrap().insert(target);
            }
        }
    }
    graph
}

/// One cycle of the graph, if any (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in &graph[node] {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, graph, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}

fn describe(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .map(|(m, uses)| {
            format!(
                "  {m} -> {}\n",
                uses.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

#[test]
fn core_module_graph_is_acyclic() {
    let graph = graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "module cycle: {}\n(move the shared item into a module below both)\ngraph:\n{}",
            cycle.join(" -> "),
            describe(&graph)
        );
    }
}

/// The modules of ARCHITECTURE.md's layer list below the "nothing below knows about C or clap"
/// line, top first (`host/` names the host module).
fn architecture_order() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut order = Vec::new();
    let mut below = false;
    for line in text.lines() {
        if line.contains("nothing below knows about C or clap") {
            below = true;
            continue;
        }
        if !below {
            continue;
        }
        if line.starts_with("```") {
            break;
        }
        // Entries start in column 1; continuation lines are indented further.
        let Some(entry) = line.strip_prefix(' ').filter(|l| !l.starts_with(' ')) else {
            continue;
        };
        let token = entry.split_whitespace().next().unwrap_or("");
        if let Some(name) = token
            .strip_suffix(".rs")
            .or_else(|| token.strip_suffix('/'))
        {
            order.push(name.to_string());
        }
    }
    order
}

#[test]
fn architecture_lists_layers_top_down() {
    let graph = graph();
    let order = architecture_order();
    let listed: BTreeSet<String> = order.iter().cloned().collect();
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    assert_eq!(
        listed.len(),
        order.len(),
        "a module is listed twice: {order:?}"
    );
    let missing: Vec<&String> = modules.difference(&listed).collect();
    let unknown: Vec<&String> = listed.difference(&modules).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "ARCHITECTURE.md's layer list and src/lib.rs differ: not listed {missing:?}, \
         listed but not a module {unknown:?}"
    );
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let upward: Vec<String> = graph
        .iter()
        .flat_map(|(m, uses)| uses.iter().map(move |u| (m, u)))
        .filter(|(m, u)| rank[m.as_str()] > rank[u.as_str()])
        .map(|(m, u)| format!("{m} uses {u}, listed above it"))
        .collect();
    assert!(
        upward.is_empty(),
        "ARCHITECTURE.md's layer list is not top-down:\n  {}\ngraph:\n{}",
        upward.join("\n  "),
        describe(&graph)
    );
}

#[test]
fn extraction_sees_code_not_comments() {
    let src = r##"
        // use crate::commented;
        /* crate::block /* nested crate::deeper */ */
        /// [`crate::doc_link`]
        use crate::{alpha::A, beta::{B, C}, self};
        let s = "crate::in_string";
        let r = r#"crate::in_raw"#;
        let c = '"'; let l: &'static str = x; crate::gamma::f();
        $crate::macro_path; my_crate::other;
    "##;
    assert_eq!(crate_paths(&code_only(src)), ["alpha", "beta", "gamma"]);
}

//! Links the module with 16 MiB of initial memory, like interpreter-based plugins
//! (the QuickJS JS PDK) that reserve a large heap up front.
fn main() {
    println!("cargo:rustc-link-arg=--initial-memory=16777216");
}

//! wasi_fs: a wasm32-wasip1 plugin using the WASI file system through Rust std.
use extism_pdk::*;

/// Outputs the contents of the file named by the input (a guest path).
#[plugin_fn]
pub fn read_file(path: String) -> FnResult<Vec<u8>> {
    Ok(std::fs::read(path.trim())?)
}

/// Input `PATH\nCONTENT`: writes CONTENT to PATH (created or truncated), outputs "ok".
#[plugin_fn]
pub fn write_file(input: String) -> FnResult<String> {
    let (path, content) = input.split_once('\n').unwrap_or((input.as_str(), ""));
    std::fs::write(path, content)?;
    Ok("ok".to_string())
}

/// Outputs the sorted entry names of the directory named by the input, one per line.
#[plugin_fn]
pub fn list_dir(path: String) -> FnResult<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.trim())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names.join("\n"))
}

/// Removes the file named by the input, outputs "ok".
#[plugin_fn]
pub fn remove_file(path: String) -> FnResult<String> {
    std::fs::remove_file(path.trim())?;
    Ok("ok".to_string())
}

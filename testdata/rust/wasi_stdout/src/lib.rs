//! wasi_stdout: a wasm32-wasip1 plugin using WASI stdout and proc_exit.
use extism_pdk::*;

/// Prints "hello from wasi\n" to stdout (fd_write) and outputs "done".
#[plugin_fn]
pub fn hello() -> FnResult<String> {
    println!("hello from wasi");
    Ok("done".to_string())
}

/// Exits (WASI proc_exit) with the i32 exit code parsed from the input.
#[plugin_fn]
pub fn exit_code(input: String) -> FnResult<()> {
    let code: i32 = input.trim().parse()?;
    std::process::exit(code)
}

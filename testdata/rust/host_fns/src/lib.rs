//! host_fns: calls user host functions imported from `extism:host/user`.
use extism_pdk::*;

#[host_fn("extism:host/user")]
extern "ExtismHost" {
    /// (i64 handle) -> i64 handle: bytes in, bytes out.
    fn host_reflect(input: Vec<u8>) -> Vec<u8>;
    /// () -> i64 handle: returns a UTF-8 string.
    fn host_context() -> String;
}

/// Passes the input to `host_reflect` and outputs what it returned.
#[plugin_fn]
pub fn roundtrip(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(unsafe { host_reflect(input)? })
}

/// Calls `host_context` and outputs the string it returned.
#[plugin_fn]
pub fn read_context() -> FnResult<String> {
    Ok(unsafe { host_context()? })
}

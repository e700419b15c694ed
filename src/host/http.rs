//! `http_request` and `http_headers` (`spec/guest-abi.md` §8).

#[cfg(feature = "http")]
use std::collections::BTreeMap;

#[cfg(feature = "http")]
use anyhow::anyhow;
use anyhow::{bail, Result};
#[cfg(feature = "http")]
use serde::Deserialize;
use wasmtime::Caller;

#[cfg(feature = "http")]
use crate::http;
use crate::plugin_state::PluginState;

/// The request object PDKs send.
#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    method: Option<String>,
}

#[cfg(not(feature = "http"))]
pub(super) fn http_request(_: Caller<'_, PluginState>, _: u64, _: u64) -> Result<u64> {
    bail!("http_request is disabled: extism-run was built without its `http` feature")
}

#[cfg(feature = "http")]
pub(super) fn http_request(
    mut caller: Caller<'_, PluginState>,
    req: u64,
    body: u64,
) -> Result<u64> {
    caller.data_mut().http.status = 0;
    caller.data_mut().http.headers.clear();
    let kernel = caller.data().kernel()?;
    let Some(req_bytes) = kernel.block(&mut caller, req)? else {
        bail!("invalid handle offset for http request: {req}");
    };
    let request: GuestRequest =
        serde_json::from_slice(req_bytes).map_err(|e| anyhow!("invalid http request: {e}"))?;
    let body_bytes = match body {
        0 => None,
        h => match kernel.block(&mut caller, h)? {
            Some(b) => Some(b.to_vec()),
            None => bail!("invalid handle offset for http body: {h}"),
        },
    };
    let state = caller.data();
    let headers: Vec<(String, String)> = request.headers.into_iter().collect();
    let policy = http::Policy {
        allowed_hosts: Some(&state.permissions.allowed_hosts),
        deadline: state.deadline,
        max_body: Some(state.permissions.max_http_response_bytes),
        progress: None,
    };
    let method = request.method.as_deref().unwrap_or("GET");
    let result = http::send(
        method,
        &request.url,
        &headers,
        body_bytes.as_deref(),
        &policy,
    );
    // A failed request ends the call: the argument blocks go with the next reset, and freeing
    // them here would run kernel code that could report a passed deadline instead of the
    // request's own error.
    let response = result?;
    let state = caller.data_mut();
    state.http.status = response.status;
    if state.http.headers_enabled {
        // Several values for one name: the last wins; values that are not visible ASCII were
        // dropped when the response was read.
        state.http.headers = response.headers.into_iter().collect();
    }
    let result = kernel.write_new(&mut caller, &response.body)?;
    kernel.free(&mut caller, req)?;
    kernel.free(&mut caller, body)?;
    Ok(result)
}

pub(super) fn http_headers(mut caller: Caller<'_, PluginState>) -> Result<u64> {
    if !caller.data().http.headers_enabled {
        return Ok(0);
    }
    let json = serde_json::to_vec(&caller.data().http.headers)?;
    let kernel = caller.data().kernel()?;
    kernel.write_new(&mut caller, &json)
}

//! Outgoing HTTP: downloading URL module sources and serving the guest's `http_request`.
//!
//! Owns redirect handling (followed here, hop by hop, so every hop's host is checked against
//! `allowed_hosts`, unlike upstream), `allowed_hosts` glob matching (`spec/guest-abi.md` §8.1),
//! the response size cap and the request timeout. It knows nothing about kernel memory.

use std::{io::Read, time::Instant};

use anyhow::{anyhow, bail, Result};
use url::Url;

use extism_manifest::HttpRequest;

use crate::progress::DownloadProgress;

const MAX_REDIRECTS: usize = 10;

/// A completed HTTP exchange.
pub(crate) struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a request may do.
pub(crate) struct Policy<'a> {
    /// `None`: any host (manifest URL sources are trusted); `Some`: glob patterns.
    pub allowed_hosts: Option<&'a [String]>,
    pub deadline: Option<Instant>,
    pub max_body: Option<u64>,
    pub progress: Option<DownloadProgress<'a>>,
}

/// The error for a request whose deadline passed; the call reports it as `timeout`.
#[derive(Debug)]
pub(crate) struct HttpTimeout;

impl std::fmt::Display for HttpTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timeout")
    }
}

impl std::error::Error for HttpTimeout {}

/// True when the URL's host matches one of `patterns` (glob, case-sensitive, on the host as
/// normalised by the URL parser; an invalid pattern is compared literally).
pub(crate) fn host_allowed(url: &Url, patterns: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    patterns.iter().any(|p| match glob::Pattern::new(p) {
        Ok(pattern) => pattern.matches(host),
        Err(_) => p == host,
    })
}

/// Fetches a module for a manifest `url` source: no host check, no size cap, no timeout.
pub(crate) fn download(
    req: &HttpRequest,
    progress: Option<DownloadProgress<'_>>,
) -> Result<Vec<u8>> {
    let method = req.method.as_deref().unwrap_or("GET");
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let policy = Policy {
        allowed_hosts: None,
        deadline: None,
        max_body: None,
        progress,
    };
    let resp = send(method, &req.url, &headers, None, &policy)?;
    if !(200..300).contains(&resp.status) {
        bail!("{}: status code {}", req.url, resp.status);
    }
    Ok(resp.body)
}

/// Sends a request, following up to ten redirects, each checked against the policy.
pub(crate) fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    policy: &Policy<'_>,
) -> Result<Response> {
    let mut url = Url::parse(url).map_err(|e| anyhow!("Invalid URL: {e}"))?;
    let mut method = method.to_ascii_uppercase();
    let mut body = body;
    for _ in 0..=MAX_REDIRECTS {
        if let Some(allowed) = policy.allowed_hosts {
            if !host_allowed(&url, allowed) {
                bail!("HTTP request to {url} is not allowed");
            }
        }
        let resp = send_once(&method, &url, headers, body, policy)?;
        let location = match resp.status {
            301 | 302 | 303 | 307 | 308 => resp
                .headers
                .iter()
                .find(|(k, _)| k == "location")
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        let Some(location) = location else {
            return Ok(resp);
        };
        url = url
            .join(&location)
            .map_err(|e| anyhow!("Invalid redirect URL {location:?}: {e}"))?;
        if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == "POST") {
            method = "GET".into();
            body = None;
        }
    }
    bail!("too many redirects (more than {MAX_REDIRECTS})")
}

fn send_once(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    policy: &Policy<'_>,
) -> Result<Response> {
    let timeout = match policy.deadline {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return Err(HttpTimeout.into()),
        },
        None => None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .timeout_global(timeout)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str());
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let result = match body {
        Some(b) => agent.run(builder.body(b.to_vec())?),
        None => agent.run(builder.body(())?),
    };
    let mut resp = result.map_err(map_ureq)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let total = resp.body().content_length();
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let body = read_capped(&mut reader, policy.max_body, total, policy.progress)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_capped(
    reader: &mut impl Read,
    max: Option<u64>,
    total: Option<u64>,
    progress: Option<DownloadProgress<'_>>,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<ureq::Error>() {
                Ok(u) => map_ureq(*u),
                Err(other) => anyhow!(other),
            },
            None => anyhow!("reading the HTTP response failed"),
        })?;
        if n == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..n]);
        if let Some(max) = max {
            if body.len() as u64 > max {
                bail!("HTTP response exceeds the configured maximum number of bytes: {max}");
            }
        }
        if let Some(p) = progress {
            p(body.len() as u64, total);
        }
    }
}

fn map_ureq(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Timeout(_) => HttpTimeout.into(),
        other => anyhow!(other),
    }
}

//! The download-progress callback type, shared by the manifest's URL sources (manifest.rs)
//! and the HTTP client that fetches them (http.rs), so neither imports the other.

/// Called with (bytes received, total if known) while a URL source downloads.
pub type DownloadProgress<'a> = &'a (dyn Fn(u64, Option<u64>) + Sync);

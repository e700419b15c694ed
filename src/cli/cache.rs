//! Where the compiled-module cache lives: `$EXTISM_RUN_CACHE`, else `extism-run` in the
//! user's cache directory. The cache itself (format, checks, clearing) is the library's
//! `disk_cache` module.

use std::path::PathBuf;

use super::args::CacheArgs;

/// The cache directory, or `None` when the platform has no cache directory.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("EXTISM_RUN_CACHE") {
        Some(dir) if !dir.is_empty() => Some(dir.into()),
        _ => extism::disk_cache::default_dir(),
    }
}

/// The directory a compiling command uses: none with --no-cache.
pub fn for_compiling(args: &CacheArgs) -> Option<PathBuf> {
    if args.no_cache {
        None
    } else {
        dir()
    }
}

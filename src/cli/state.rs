//! The --state file: a plugin's vars kept between runs, so a shell script can call a stateful
//! plugin repeatedly.
//!
//! JSON: `{"extism_run_state": 1, "vars": {"NAME": "BASE64"}}`. Written atomically (temporary
//! file + rename); `reset --state` removes only files in this format.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write},
    path::Path,
};

use anyhow::{bail, Context, Result};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    extism_run_state: u32,
    vars: BTreeMap<String, String>,
}

pub type Vars = BTreeMap<String, Vec<u8>>;

/// The vars saved in `path`; none when the file does not exist yet.
pub fn load(path: &Path) -> Result<Vars> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vars::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&text).with_context(|| format!("invalid state file {}", path.display()))
}

fn parse(text: &str) -> Result<Vars> {
    let file: StateFile = serde_json::from_str(text)?;
    if file.extism_run_state != FORMAT {
        bail!("unknown format version {}", file.extism_run_state);
    }
    file.vars
        .into_iter()
        .map(|(k, v)| {
            let bytes = STANDARD
                .decode(v)
                .with_context(|| format!("var {k:?} is not base64"))?;
            Ok((k, bytes))
        })
        .collect()
}

pub fn save(path: &Path, vars: &Vars) -> Result<()> {
    let file = StateFile {
        extism_run_state: FORMAT,
        vars: vars
            .iter()
            .map(|(k, v)| (k.clone(), STANDARD.encode(v)))
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&file)?;
    json.push('\n');
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write = || -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(json.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write state file {}", path.display()))
}

/// Removes the state file at `path`: `Ok(false)` when there is none. Refuses a file that is
/// not a state file, so a mistyped path never deletes something else.
pub fn remove(path: &Path) -> Result<bool> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if parse(&text).is_err() {
        bail!(
            "{} is not an extism-run state file; not removing it",
            path.display()
        );
    }
    fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(true)
}

//! Lower-case hex text of bytes (digests in file names, headers and messages).

use std::fmt::Write;

/// `bytes` as lower-case hex, two digits per byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

//! Conversions between Rust values and the bytes that cross the plugin boundary.
//!
//! Mirrors upstream's `ToBytes`/`FromBytes` so `plugin.call::<&str, String>(...)` reads the
//! same. Owns nothing else.

use anyhow::Result;

/// A value that can be sent to a plugin as bytes.
pub trait ToBytes<'a> {
    type Bytes: AsRef<[u8]>;
    fn to_bytes(&self) -> Result<Self::Bytes>;
}

/// A value that can be read from bytes a plugin produced, possibly borrowing them.
pub trait FromBytes<'a>: Sized {
    fn from_bytes(data: &'a [u8]) -> Result<Self>;
}

/// A value that can be read from bytes without borrowing them.
pub trait FromBytesOwned: Sized {
    fn from_bytes_owned(data: &[u8]) -> Result<Self>;
}

impl<T: FromBytesOwned> FromBytes<'_> for T {
    fn from_bytes(data: &[u8]) -> Result<Self> {
        T::from_bytes_owned(data)
    }
}

/// JSON encoding of any serde value: `Json(value)` in, `Json<T>` out.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<'a, T: serde::Serialize> ToBytes<'a> for Json<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self.0)?)
    }
}

impl<T: serde::de::DeserializeOwned> FromBytesOwned for Json<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self> {
        Ok(Json(serde_json::from_slice(data)?))
    }
}

impl<'a> ToBytes<'a> for &'a [u8] {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<&'a [u8]> {
        Ok(self)
    }
}

impl<'a> ToBytes<'a> for &'a str {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<&'a [u8]> {
        Ok(self.as_bytes())
    }
}

impl<'a> ToBytes<'a> for &'a String {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<&'a [u8]> {
        Ok(self.as_bytes())
    }
}

impl<'a> ToBytes<'a> for &'a Vec<u8> {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<&'a [u8]> {
        Ok(self.as_slice())
    }
}

impl ToBytes<'_> for String {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.as_bytes().to_vec())
    }
}

impl ToBytes<'_> for Vec<u8> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.clone())
    }
}

impl<const N: usize> ToBytes<'_> for [u8; N] {
    type Bytes = [u8; N];
    fn to_bytes(&self) -> Result<[u8; N]> {
        Ok(*self)
    }
}

impl ToBytes<'_> for () {
    type Bytes = [u8; 0];
    fn to_bytes(&self) -> Result<[u8; 0]> {
        Ok([])
    }
}

/// Integers travel as little-endian bytes, as in upstream.
impl ToBytes<'_> for u64 {
    type Bytes = [u8; 8];
    fn to_bytes(&self) -> Result<[u8; 8]> {
        Ok(self.to_le_bytes())
    }
}

impl<'a> FromBytes<'a> for &'a [u8] {
    fn from_bytes(data: &'a [u8]) -> Result<Self> {
        Ok(data)
    }
}

impl<'a> FromBytes<'a> for &'a str {
    fn from_bytes(data: &'a [u8]) -> Result<Self> {
        Ok(std::str::from_utf8(data)?)
    }
}

impl FromBytesOwned for Vec<u8> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self> {
        Ok(data.to_vec())
    }
}

impl FromBytesOwned for String {
    fn from_bytes_owned(data: &[u8]) -> Result<Self> {
        Ok(std::str::from_utf8(data)?.to_string())
    }
}

impl FromBytesOwned for () {
    fn from_bytes_owned(_: &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl FromBytesOwned for u64 {
    fn from_bytes_owned(data: &[u8]) -> Result<Self> {
        let bytes: [u8; 8] = data
            .try_into()
            .map_err(|_| anyhow::anyhow!("expected 8 bytes for a u64, got {}", data.len()))?;
        Ok(u64::from_le_bytes(bytes))
    }
}

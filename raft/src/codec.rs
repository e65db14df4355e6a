//! bincode encoding for everything the crate writes to disk or the wire.

use serde::{de::DeserializeOwned, Serialize};

/// Encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// Encodes `value` with bincode's standard configuration.
///
/// # Errors
/// When serde refuses the value (never for the crate's own types).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
/// When the bytes are truncated or not of type `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    Ok(value)
}

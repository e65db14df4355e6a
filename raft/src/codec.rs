//! bincode encoding for everything the crate writes to disk or the wire.
//!
//! What arrives over the network is decoded with [`decode_rpc`], which caps
//! what declared lengths may claim ([`RPC_DECODE_LIMIT`]): bincode allocates a
//! collection's declared length before reading its items, so without the cap
//! a few bytes declaring a 2^45-byte vector would abort the process.

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

/// The most a decoded RPC may claim (see the module docs). Twice the largest
/// body a peer accepts ([`crate::rpc::MAX_RPC_BODY`]): decoded structures are
/// somewhat larger than their encoding, never by a factor of two for the
/// large values that fill a body.
pub const RPC_DECODE_LIMIT: usize = 2 * crate::rpc::MAX_RPC_BODY;

/// The length of `value`'s encoding, computed without building it.
///
/// # Errors
/// When serde refuses the value (never for the crate's own types).
pub fn encoded_len<T: Serialize>(value: &T) -> Result<usize, CodecError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    bincode::serde::encode_into_std_write(value, &mut count, bincode::config::standard())?;
    Ok(count.0)
}

/// Decodes bytes that came from the network: as [`decode`], refusing
/// declared lengths that would claim more than [`RPC_DECODE_LIMIT`].
///
/// # Errors
/// When the bytes are truncated, not of type `T`, or claim too much.
pub fn decode_rpc<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<RPC_DECODE_LIMIT>();
    let (value, _) = bincode::serde::decode_from_slice(bytes, config)?;
    Ok(value)
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
/// When the bytes are truncated or not of type `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Member, TypeConfig};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
    use std::collections::{BTreeMap, BTreeSet};

    /// Every openraft type the crate writes must survive bincode (which has
    /// no self-describing format, so serde attributes can break it).
    #[test]
    fn openraft_records_round_trip() {
        let log_id = LogId::new(CommittedLeaderId::new(3, 7), 42);
        let request = flotilla_storage::Request {
            id: Some([9; 16]),
            command: flotilla_storage::Command::Put {
                key: b"/k".to_vec(),
                value: b"v".to_vec(),
            },
        };
        let nodes = BTreeMap::from([(
            7u64,
            Member {
                name: "m1".into(),
                addr: "127.0.0.1:1".into(),
            },
        )]);
        let membership = Membership::new(vec![BTreeSet::from([7u64])], nodes);
        let entries: Vec<Entry<TypeConfig>> = vec![
            Entry {
                log_id,
                payload: EntryPayload::Normal(vec![request]),
            },
            Entry {
                log_id,
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id,
                payload: EntryPayload::Blank,
            },
        ];
        for entry in &entries {
            let back: Entry<TypeConfig> = decode(&encode(entry).expect("encode")).expect("decode");
            assert_eq!(&back, entry);
        }
        let vote = Vote::new_committed(3, 7u64);
        let back: Vote<u64> = decode(&encode(&vote).expect("encode")).expect("decode");
        assert_eq!(back, vote);
        assert!(
            decode::<Vote<u64>>(&[0xff]).is_err(),
            "garbage must not decode"
        );
        assert_eq!(
            encoded_len(&entries).expect("len"),
            encode(&entries).expect("encode").len()
        );
    }

    /// A body declaring a huge vector is refused before anything is
    /// allocated (without the limit, allocating 2^45 bytes aborts the process).
    #[test]
    fn rpc_decoder_refuses_huge_declared_lengths() {
        // bincode's varint: 0xfd then a u64 little-endian length.
        let mut body = vec![0xfd];
        body.extend_from_slice(&(1u64 << 45).to_le_bytes());
        body.extend_from_slice(&[0; 16]);
        let refused = decode_rpc::<Vec<u8>>(&body);
        assert!(refused.is_err(), "a 32 TiB declared length was accepted");
        let entries: Vec<Entry<TypeConfig>> = Vec::new();
        let bytes = encode(&entries).expect("encode");
        assert!(decode_rpc::<Vec<Entry<TypeConfig>>>(&bytes).is_ok());
    }
}

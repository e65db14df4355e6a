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
    }
}

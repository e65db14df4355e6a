//! Byte layouts of keys and records.
//!
//! Two encodings matter for correctness because RocksDB orders keys bytewise:
//!
//! * **Revisions** are stored as 8 big-endian bytes with the sign bit flipped,
//!   so byte order is numeric order for every `i64` (the events column family
//!   is keyed by revision, and history keys end with one).
//! * **History keys** are `escape(key) ++ 0x00 0x00 ++ revision`. Escaping
//!   turns every `0x00` of the key into `0x00 0xFF`, and the `0x00 0x00`
//!   terminator sorts below any escaped byte, so all versions of one key are
//!   contiguous and ordered by revision, and keys still sort in raw key order:
//!   `"a"`'s versions all come before `"a\0"`'s, which come before `"ab"`'s.
//!   Escaping is bytewise, so `escape(prefix)` is a prefix of `escape(key)`
//!   exactly when `prefix` is a prefix of `key`, which makes historical range
//!   scans a single prefix scan.
//!
//! Records are bincode 2 (standard config) encodings of serde types.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, KeyValue, Result, Revision};

/// The bincode configuration of every stored record.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Length of an encoded revision.
pub(crate) const REV_LEN: usize = 8;

/// Encodes a value with the crate's bincode configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(value, CONFIG)?)
}

/// Decodes a value, rejecting trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, CONFIG)?;
    if read != bytes.len() {
        return Err(Error::Corrupt(format!(
            "{} trailing bytes after a record",
            bytes.len() - read
        )));
    }
    Ok(value)
}

/// Encodes a revision so that byte order is numeric order.
pub(crate) fn rev_key(rev: Revision) -> [u8; REV_LEN] {
    // Flipping the sign bit maps i64::MIN..=i64::MAX onto 0..=u64::MAX in order.
    (u64::from_ne_bytes(rev.to_ne_bytes()) ^ (1 << 63)).to_be_bytes()
}

/// Decodes [`rev_key`].
pub(crate) fn decode_rev(bytes: &[u8]) -> Result<Revision> {
    let array: [u8; REV_LEN] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("revision of {} bytes", bytes.len())))?;
    let bits = u64::from_be_bytes(array) ^ (1 << 63);
    Ok(i64::from_ne_bytes(bits.to_ne_bytes()))
}

/// `escape(prefix)`: the prefix every history key of a key under `prefix` starts with.
pub(crate) fn hist_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 2 + REV_LEN);
    for &byte in prefix {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out
}

/// `escape(key) ++ 0x00 0x00`: the prefix of all history keys of `key`.
pub(crate) fn hist_group(key: &[u8]) -> Vec<u8> {
    let mut out = hist_prefix(key);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The history key of `key` at `rev`.
pub(crate) fn hist_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut out = hist_group(key);
    out.extend_from_slice(&rev_key(rev));
    out
}

/// Splits a history key into the raw key and the revision.
pub(crate) fn decode_hist_key(bytes: &[u8]) -> Result<(Vec<u8>, Revision)> {
    let corrupt = || Error::Corrupt("malformed history key".to_owned());
    let split = bytes.len().checked_sub(REV_LEN).ok_or_else(corrupt)?;
    let (escaped, rev) = bytes.split_at(split);
    let escaped = escaped.strip_suffix(&[0, 0]).ok_or_else(corrupt)?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&byte) = bytes.next() {
        key.push(byte);
        if byte == 0 && bytes.next() != Some(&0xFF) {
            return Err(corrupt());
        }
    }
    Ok((key, decode_rev(rev)?))
}

/// The stored form of a live key: a [`KeyValue`] without its key, which the
/// storage key already holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
}

impl Record {
    /// Reattaches the key.
    pub(crate) fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_sort_numerically() {
        let revs = [i64::MIN, -5, -1, 0, 1, 2, 255, 256, i64::MAX];
        for pair in revs.windows(2) {
            assert!(rev_key(pair[0]) < rev_key(pair[1]), "{pair:?}");
        }
        for rev in revs {
            assert_eq!(decode_rev(&rev_key(rev)).expect("decodes"), rev);
        }
    }

    #[test]
    fn history_keys_sort_by_key_then_revision() {
        // Raw key order, each with increasing revisions; every history key
        // must sort strictly after the previous one.
        let keys: [&[u8]; 9] = [
            b"", b"\0", b"\0\0", b"\0\x01", b"a", b"a\0", b"a\0b", b"ab", b"a\xff",
        ];
        let mut encoded = Vec::new();
        for key in keys {
            for rev in [1, 2, 300] {
                encoded.push(hist_key(key, rev));
            }
        }
        for pair in encoded.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
    }

    #[test]
    fn history_keys_round_trip() {
        for key in [&b""[..], b"\0", b"a\0\0b", b"\xff\0\xff", b"plain"] {
            let (decoded, rev) = decode_hist_key(&hist_key(key, 42)).expect("decodes");
            assert_eq!((decoded.as_slice(), rev), (key, 42));
        }
    }

    #[test]
    fn history_prefix_matches_exactly_the_keys_under_it() {
        let cases: [(&[u8], &[u8], bool); 8] = [
            (b"a", b"a", true),
            (b"a", b"ab", true),
            (b"a", b"b", false),
            (b"a\0", b"a", false),
            (b"a\0", b"a\0", true),
            (b"a\0", b"a\0\0", true),
            (b"a\0\0", b"a\0", false),
            (b"", b"\0", true),
        ];
        for (prefix, key, under) in cases {
            assert_eq!(
                hist_key(key, 7).starts_with(&hist_prefix(prefix)),
                under,
                "prefix {prefix:?} key {key:?}"
            );
        }
    }

    #[test]
    fn malformed_history_keys_are_corrupt() {
        for bytes in [&b""[..], b"1234567", b"a\0\x0112345678", b"a\0\0\0\x01"] {
            assert!(matches!(decode_hist_key(bytes), Err(Error::Corrupt(_))));
        }
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let mut bytes = encode(&7u32).expect("encodes");
        bytes.push(0);
        assert!(matches!(decode::<u32>(&bytes), Err(Error::Corrupt(_))));
    }
}

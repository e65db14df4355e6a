//! Credentials: join tokens, the admin credential and the peer secret.
//!
//! Tokens follow kubeadm's shape, `ID.SECRET` (6 and 16 characters of
//! `[a-z0-9]`). Only the SHA-256 of the secret is kept, in the replicated store
//! under `/flotilla/tokens/ID`, with its role, expiry and revocation flag, so
//! every master can check a token and none can reveal one.
//!
//! The admin credential (a bearer token written into `admin.kubeconfig`) and
//! the peer secret (authenticating Raft RPCs) are random secrets made by
//! `ctl init` and handed to masters when they join. TLS and the CA fingerprint
//! in the token come with the security work; listeners and clients are built
//! in one place each ([`crate::master::serve`], [`crate::client::http_client`])
//! so TLS slots in there.

pub mod nodes;
pub mod pki;
pub mod tokens;

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `len` characters from `[a-z0-9]`.
pub fn random_string(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Hex SHA-256 of `secret`.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets through their digests, so timing does not reveal how
/// long a common prefix is.
pub fn secrets_match(presented: &str, expected: &str) -> bool {
    Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.as_bytes())
}

/// Creates `path` (and missing parents) readable by the owner only, and
/// tightens it to 0700 if it already exists: data directories hold node
/// credentials and CA keys (etcd refuses a data directory that is not 0700).
///
/// # Errors
/// When the directory cannot be created or its mode set.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

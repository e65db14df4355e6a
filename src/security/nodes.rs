//! Node credentials: what a worker gets when it joins, and how the API
//! recognises it.
//!
//! A credential is `node:NAME:SECRET`, sent as a bearer token. The store
//! keeps only the SHA-256 of the secret, under `/flotilla/nodes/NAME`, with
//! a second secret the masters present to the node's agent when they fetch
//! logs from it. Deleting the record (or the Node object, which lets the
//! name join again) is how a node is cut off.

use super::{random_string, secrets_match, sha256_hex};
use serde::{Deserialize, Serialize};

/// Where node credential records live in the store (the objects layer owns
/// the layout, so deleting a Node can release its record).
pub const PREFIX: &str = crate::objects::node::CREDENTIAL_PREFIX;
const SECRET_LEN: usize = 32;

/// A node's credential as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node's name.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// The secret masters show the agent (for logs).
    pub agent_secret: String,
    /// When it joined, Unix seconds.
    pub created: u64,
}

/// The store key of node `name`'s record.
pub fn key(name: &str) -> String {
    crate::objects::node::credential_key(name)
}

/// A new credential for `name`: the token to hand out and the record to keep.
pub fn issue(name: &str, now: u64) -> (String, NodeRecord) {
    let secret = random_string(SECRET_LEN);
    let record = NodeRecord {
        name: name.to_owned(),
        secret_sha256: sha256_hex(&secret),
        agent_secret: random_string(SECRET_LEN),
        created: now,
    };
    (format!("node:{name}:{secret}"), record)
}

/// The node name and secret of a bearer token, if it is a node credential.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("node:")?;
    let (name, secret) = rest.rsplit_once(':')?;
    (!name.is_empty() && !secret.is_empty()).then_some((name, secret))
}

/// Whether `secret` is the one `record` was issued with.
pub fn verify(record: &NodeRecord, secret: &str) -> bool {
    secrets_match(&sha256_hex(secret), &record.secret_sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_verify_only_their_secret() {
        let (token, record) = issue("worker-1", 5);
        let (name, secret) = parse(&token).expect("a node credential");
        assert_eq!(name, "worker-1");
        assert!(verify(&record, secret));
        assert!(!verify(&record, "guess"));
        assert!(!record.agent_secret.is_empty());
        assert_eq!(parse("admin-token"), None);
        assert_eq!(parse("node::x"), None);
        assert_eq!(key("w"), "/flotilla/nodes/w");
    }
}

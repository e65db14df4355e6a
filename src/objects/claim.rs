//! Claims: store keys a write takes or gives back together with an object.
//!
//! A Service's cluster IP and node ports, and a Node's agent credential, are
//! keys beside the object. A strategy says which keys an object's create,
//! update or delete takes or releases ([`super::Strategy::allocate`] and
//! friends); the store makes them part of the object's own transaction, so
//! two objects can never hold the same key. This is pure data: nothing here
//! reads or writes the store.

/// A store key a write takes (must not exist) or gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Create `key` holding `owner` (`NAMESPACE/NAME`), or fail the write.
    Take {
        /// The claimed key.
        key: String,
        /// Who holds it: the value stored under `key`.
        owner: String,
    },
    /// Delete `key`.
    Release {
        /// The claimed key.
        key: String,
        /// The holder the key must still name for the write to apply; `None`
        /// deletes it whatever it holds (a Node's credential record).
        owner: Option<String>,
    },
}

/// The owner a claim of `obj` records: `NAMESPACE/NAME` (`/NAME` for a
/// cluster-scoped object).
pub fn owner(obj: &serde_json::Value) -> String {
    format!(
        "{}/{}",
        super::meta::namespace(obj).unwrap_or(""),
        super::meta::name(obj).unwrap_or("")
    )
}

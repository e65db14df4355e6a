//! What can go wrong in the object store, typed so that each caller decides:
//! the API turns it into a Kubernetes `Status` (in one `From`), a control
//! loop requeues, a redirect names the leader.

use crate::objects::validate::Errors;
use crate::objects::Resource;
use flotilla_raft::Member;

/// An object-store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A create named an object that exists.
    #[error("{} \"{name}\" already exists", resource.plural)]
    AlreadyExists {
        /// The object's resource.
        resource: &'static Resource,
        /// Its name.
        name: String,
    },
    /// The object changed since it was read (or a precondition failed).
    #[error("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", resource.plural)]
    Conflict {
        /// The object's resource.
        resource: &'static Resource,
        /// Its name.
        name: String,
    },
    /// The object does not exist.
    #[error("{} \"{name}\" not found", qualified(resource))]
    NotFound {
        /// The object's resource.
        resource: &'static Resource,
        /// Its name.
        name: String,
    },
    /// A namespaced create named a namespace that does not exist.
    #[error("namespaces \"{namespace}\" not found")]
    NamespaceMissing {
        /// The missing namespace.
        namespace: String,
    },
    /// The object breaks its kind's rules: one error per field.
    #[error("{} \"{name}\" is invalid: {}", resource.kind, summary(errors))]
    Invalid {
        /// The object's resource.
        resource: &'static Resource,
        /// Its name.
        name: String,
        /// What is wrong, field by field.
        errors: Errors,
    },
    /// Writes (and strict reads) go to the leader; `None` while there is none.
    #[error("{}", match leader { Some(l) => format!("not the leader; the leader is {}", l.addr), None => "no leader: an election is in progress; retry shortly".to_owned() })]
    NotLeader {
        /// The leader, when one is known.
        leader: Option<Member>,
    },
    /// A write was not committed in time: its outcome is unknown.
    #[error("the write was not committed within {seconds}s; its outcome is unknown: retry with the same request id")]
    Timeout {
        /// How long the write waited.
        seconds: u64,
    },
    /// A linearizable read could not be served now (no quorum, no leader,
    /// or this member could not catch up).
    #[error("linearizable read: {0}")]
    Read(#[source] flotilla_raft::ReadError),
    /// Replication failed for another reason (shutting down, storage).
    #[error("replication: {0}")]
    Replication(String),
    /// Reading history before the compaction point.
    #[error(
        "revision {requested} has been compacted; the oldest readable revision is {compacted}"
    )]
    Compacted {
        /// The revision asked for.
        requested: flotilla_storage::Revision,
        /// The store's compact revision.
        compacted: flotilla_storage::Revision,
    },
    /// The local store failed.
    #[error("storage: {0}")]
    Storage(#[source] flotilla_storage::Error),
    /// A kind the registry does not serve was asked for (a bug).
    #[error("{0} is not a served kind")]
    Unserved(String),
    /// A stored value is not the JSON object it should be.
    #[error("stored object {key} is corrupt: {source}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `pods` or `deployments.apps`, as Kubernetes names a resource in messages.
fn qualified(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

fn summary(errors: &Errors) -> String {
    errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<flotilla_storage::Error> for Error {
    fn from(e: flotilla_storage::Error) -> Error {
        match e {
            flotilla_storage::Error::Compacted {
                requested,
                compacted,
            } => Error::Compacted {
                requested,
                compacted,
            },
            other => Error::Storage(other),
        }
    }
}

impl From<flotilla_raft::ReadError> for Error {
    fn from(e: flotilla_raft::ReadError) -> Error {
        Error::Read(e)
    }
}

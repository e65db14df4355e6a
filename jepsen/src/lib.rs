//! Flotilla's Jepsen-style tests: run a real cluster of `ctl` masters in
//! network namespaces, inject faults while clients record what they see, and
//! check the recorded history against a sequential model.
//!
//! The crate treats the cluster as a black box: it starts `ctl` processes and
//! speaks HTTPS to the `/kv` API, exactly as a user would. It never links the
//! store's own crates.
//!
//! | module | what |
//! |---|---|
//! | [`net`] | namespaces, bridge, veth pairs, iptables grudges, cleanup |
//! | [`cluster`] | the `ctl` processes: init, join, kill, restart, pause, remove |
//! | [`client`] | `/kv` requests with Jepsen's ok / fail / info outcomes |
//! | [`workload`] | register, set and watch workloads, the worker loop |
//! | [`watch`] | the watch workload's watchers and compactor |
//! | [`nemesis`] | the faults and their schedule |
//! | [`history`] | events, the recorder, `history.jsonl` |
//! | [`checker`] | linearizability (Porcupine-style), the set and watch checkers |
//! | [`report`] | `results.json`, plots, timeline |
//! | [`run`] | one test from start to finish |

#![warn(missing_docs)]

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod watch;
pub mod workload;

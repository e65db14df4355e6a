//! Cluster-wide settings of the control loops, given to `ctl init` and kept
//! in the replicated store, so whichever master leads uses the same ones.
//! The pod network's ranges live here too: the masters carve node ranges
//! from them, agents read them from `/cluster/settings`.

use super::Store;
use crate::objects::podcidr::{self, Cidr};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where the settings live in the store.
pub const KEY: &str = "/flotilla/settings";

/// The control loops' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// A node silent this long is NotReady/Unknown (`--node-monitor-grace-period`).
    #[serde(with = "humantime_serde_secs")]
    pub node_monitor_grace_period: Duration,
    /// Pods of a node not ready this long are deleted and replaced
    /// (`--pod-eviction-timeout`).
    #[serde(with = "humantime_serde_secs")]
    pub pod_eviction_timeout: Duration,
    /// The cluster's pod network, carved into per-node ranges (`--pod-cidr`).
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: Cidr,
    /// The prefix length of each node's range (`--node-cidr-mask-size`).
    #[serde(default = "default_node_mask")]
    pub node_cidr_mask_size: u8,
}

fn default_pod_cidr() -> Cidr {
    podcidr::DEFAULT_CLUSTER_CIDR
}

fn default_node_mask() -> u8 {
    podcidr::DEFAULT_NODE_MASK
}

impl Default for Settings {
    /// Kubernetes' defaults: 40 s and 5 min; pods on 10.244.0.0/16, a /24
    /// per node.
    fn default() -> Self {
        Settings {
            node_monitor_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            pod_cidr: default_pod_cidr(),
            node_cidr_mask_size: default_node_mask(),
        }
    }
}

/// Durations as (fractional) seconds in JSON, so `ctl kv get` reads plainly.
mod humantime_serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The store failed.
    #[error("reading {KEY}: {0}")]
    Store(#[from] flotilla_storage::Error),
    /// The record is not valid JSON settings.
    #[error("{KEY} is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl Settings {
    /// Reads the settings from this member's store (defaults when unset).
    ///
    /// # Errors
    /// When the store fails or the record is malformed.
    pub fn load(store: &Store) -> Result<Settings, SettingsError> {
        match store.engine().get(KEY.as_bytes(), None)?.value {
            Some(kv) => Ok(serde_json::from_slice(&kv.value)?),
            None => Ok(Settings::default()),
        }
    }

    /// The store request that records these settings.
    ///
    /// # Errors
    /// Never in practice (serializing plain numbers).
    pub fn command(&self) -> Result<flotilla_storage::Command, serde_json::Error> {
        Ok(flotilla_storage::Command::Put {
            key: KEY.as_bytes().to_vec(),
            value: serde_json::to_vec(self)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_as_seconds() {
        let s = Settings {
            node_monitor_grace_period: Duration::from_millis(4500),
            pod_eviction_timeout: Duration::from_secs(10),
            ..Settings::default()
        };
        let text = serde_json::to_string(&s).expect("encode");
        assert_eq!(
            text,
            r#"{"node_monitor_grace_period":4.5,"pod_eviction_timeout":10.0,"pod_cidr":"10.244.0.0/16","node_cidr_mask_size":24}"#
        );
        assert_eq!(serde_json::from_str::<Settings>(&text).expect("decode"), s);
        assert!(serde_json::from_str::<Settings>(
            r#"{"node_monitor_grace_period":-1,"pod_eviction_timeout":1}"#
        )
        .is_err());
        // Settings recorded before the pod network existed read with its defaults.
        let old: Settings =
            serde_json::from_str(r#"{"node_monitor_grace_period":40,"pod_eviction_timeout":300}"#)
                .expect("old settings");
        assert_eq!(old, Settings::default());
    }
}

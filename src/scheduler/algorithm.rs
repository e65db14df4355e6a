//! Where a pod should run: filter the nodes, score the feasible ones, pick
//! the best. Pure functions over [`NodeInfo`] and [`PodInfo`], no I/O.
//!
//! Filters (a node failing any is infeasible, and the reason is counted for
//! the pod's FailedScheduling message, as kube-scheduler words it):
//! node Ready and schedulable, taints with effect NoSchedule or NoExecute
//! tolerated, nodeSelector, CPU / memory requests against allocatable minus
//! what is already bound, the node's pod count, host ports.
//!
//! Scores (0-100 each, summed): *least allocated* — the share of CPU and
//! memory left after placing the pod, counting a pod without requests as
//! 100m / 200Mi as kube-scheduler does for scoring — and *spreading* — fewer
//! pods of the same owner on the node score higher. Ties are broken at random
//! so identical nodes fill evenly.
//!
//! Like kube-scheduler, on large clusters the search stops once enough
//! feasible nodes were found ([`feasible_to_find`]), starting where the
//! previous search stopped, so every node gets its turn.

use crate::objects::pod::Requests;
use std::collections::{HashMap, HashSet};

/// CPU a pod without a CPU request counts as when scoring (millicores).
pub const DEFAULT_CPU_MILLIS: i64 = 100;
/// Memory a pod without a memory request counts as when scoring.
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// A taint on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// A pod's toleration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toleration {
    /// Key; empty with operator Exists tolerates every taint.
    pub key: String,
    /// `Equal` (default) or `Exists`.
    pub operator: String,
    /// Value to equal.
    pub value: String,
    /// Effect tolerated; empty tolerates every effect.
    pub effect: String,
}

impl Toleration {
    /// Whether this toleration covers `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if self.key.is_empty() {
            return self.operator == "Exists";
        }
        if self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "Exists" => true,
            _ => self.value == taint.value,
        }
    }
}

/// What the scheduler knows of a node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels, for nodeSelector.
    pub labels: HashMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The Ready condition is True.
    pub ready: bool,
    /// Allocatable CPU and memory.
    pub allocatable: Requests,
    /// Allocatable pods.
    pub max_pods: i64,
    /// Requests of the pods bound or assumed here.
    pub requested: Requests,
    /// Requests of those pods for scoring (with the defaults for unset requests).
    pub requested_for_score: Requests,
    /// Pods bound or assumed here.
    pub pods: i64,
    /// Host ports in use: (protocol, port).
    pub host_ports: HashSet<(String, i64)>,
    /// Pods here per owner (controller uid).
    pub owner_pods: HashMap<String, u32>,
}

/// What the scheduler knows of a pod to place.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// Requests.
    pub requests: Requests,
    /// `spec.nodeSelector`.
    pub node_selector: Vec<(String, String)>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Host ports it binds.
    pub host_ports: Vec<(String, i64)>,
    /// Its controller's uid.
    pub owner: Option<String>,
}

impl PodInfo {
    /// Requests as scoring counts them.
    pub fn requests_for_score(&self) -> Requests {
        Requests {
            cpu_millis: if self.requests.cpu_millis == 0 {
                DEFAULT_CPU_MILLIS
            } else {
                self.requests.cpu_millis
            },
            memory: if self.requests.memory == 0 {
                DEFAULT_MEMORY
            } else {
                self.requests.memory
            },
        }
    }
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    /// The node is not Ready.
    NotReady,
    /// The node is cordoned.
    Unschedulable,
    /// An untolerated NoSchedule / NoExecute taint.
    Taint,
    /// nodeSelector does not match.
    Selector,
    /// Not enough CPU.
    Cpu,
    /// Not enough memory.
    Memory,
    /// The node is at its pod limit.
    Pods,
    /// A host port is taken.
    HostPort,
}

impl Unfit {
    /// kube-scheduler's wording.
    pub fn describe(self) -> &'static str {
        match self {
            Unfit::NotReady => "node(s) were not ready",
            Unfit::Unschedulable => "node(s) were unschedulable",
            Unfit::Taint => "node(s) had untolerated taint(s)",
            Unfit::Selector => "node(s) didn't match Pod's node affinity/selector",
            Unfit::Cpu => "Insufficient cpu",
            Unfit::Memory => "Insufficient memory",
            Unfit::Pods => "Too many pods",
            Unfit::HostPort => "node(s) didn't have free ports for the requested pod ports",
        }
    }
}

/// Checks every filter; the first that fails.
///
/// # Errors
/// The reason the node cannot take the pod.
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if !node.ready {
        return Err(Unfit::NotReady);
    }
    if node.unschedulable {
        return Err(Unfit::Unschedulable);
    }
    let untolerated = node.taints.iter().any(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
    });
    if untolerated {
        return Err(Unfit::Taint);
    }
    if !pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return Err(Unfit::Selector);
    }
    if node.requested.cpu_millis + pod.requests.cpu_millis > node.allocatable.cpu_millis
        && pod.requests.cpu_millis > 0
    {
        return Err(Unfit::Cpu);
    }
    if node.requested.memory + pod.requests.memory > node.allocatable.memory
        && pod.requests.memory > 0
    {
        return Err(Unfit::Memory);
    }
    if node.pods + 1 > node.max_pods {
        return Err(Unfit::Pods);
    }
    if pod.host_ports.iter().any(|p| node.host_ports.contains(p)) {
        return Err(Unfit::HostPort);
    }
    Ok(())
}

/// Share (0-100) of `capacity` left after `used`.
fn left(capacity: i64, used: i64) -> i64 {
    if capacity <= 0 || used >= capacity {
        0
    } else {
        (capacity - used) * 100 / capacity
    }
}

/// The least-allocated score (0-100) of placing `pod` on `node`.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let after = node.requested_for_score.plus(pod.requests_for_score());
    (left(node.allocatable.cpu_millis, after.cpu_millis)
        + left(node.allocatable.memory, after.memory))
        / 2
}

/// How many feasible nodes a search looks for among `nodes` (kube-scheduler's
/// adaptive percentageOfNodesToScore: all of up to 100 nodes, then a share
/// falling from 50% to 5%, never fewer than 100).
pub fn feasible_to_find(nodes: usize) -> usize {
    if nodes <= 100 {
        return nodes;
    }
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(100)
}

/// The outcome of one search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind to the node at this index.
    Bind(usize),
    /// No node fits; how many failed for each reason.
    Unschedulable(Vec<(Unfit, usize)>),
}

/// The FailedScheduling message for `reasons` over `total` nodes.
pub fn unschedulable_message(total: usize, reasons: &[(Unfit, usize)]) -> String {
    if total == 0 {
        return "0/0 nodes are available: no nodes registered.".into();
    }
    let parts: Vec<String> = reasons
        .iter()
        .map(|(r, n)| format!("{n} {}", r.describe()))
        .collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Picks a node for `pod` among `nodes`, examining them from `start` on
/// (wrapping) until [`feasible_to_find`] fit. `random` breaks ties. Returns
/// the decision and how many nodes were examined.
pub fn schedule(
    pod: &PodInfo,
    nodes: &[NodeInfo],
    start: usize,
    mut random: impl FnMut() -> u64,
) -> (Decision, usize) {
    let total = nodes.len();
    let want = feasible_to_find(total);
    let mut feasible: Vec<usize> = Vec::with_capacity(want.min(total));
    let mut reasons: HashMap<Unfit, usize> = HashMap::new();
    let mut examined = 0;
    for offset in 0..total {
        if feasible.len() >= want {
            break;
        }
        let index = (start + offset) % total;
        examined += 1;
        match fits(pod, &nodes[index]) {
            Ok(()) => feasible.push(index),
            Err(reason) => *reasons.entry(reason).or_default() += 1,
        }
    }
    if feasible.is_empty() {
        let mut reasons: Vec<(Unfit, usize)> = reasons.into_iter().collect();
        reasons.sort();
        return (Decision::Unschedulable(reasons), examined);
    }
    // Spreading: fewer pods of the same owner score higher, relative to
    // the most crowded feasible node.
    let owner_count = |i: usize| -> i64 {
        pod.owner
            .as_ref()
            .and_then(|o| nodes[i].owner_pods.get(o))
            .map_or(0, |n| i64::from(*n))
    };
    let most = feasible.iter().map(|&i| owner_count(i)).max().unwrap_or(0);
    let mut best: Option<(i64, usize)> = None;
    let mut ties = 0u64;
    for &i in &feasible {
        let spread = if most == 0 {
            100
        } else {
            (most - owner_count(i)) * 100 / most
        };
        let score = least_allocated(pod, &nodes[i]) + spread;
        match best {
            Some((top, _)) if score < top => {}
            Some((top, _)) if score == top => {
                // Reservoir sampling: each tied node equally likely.
                ties += 1;
                if random().is_multiple_of(ties) {
                    best = Some((score, i));
                }
            }
            _ => {
                best = Some((score, i));
                ties = 1;
            }
        }
    }
    match best {
        Some((_, i)) => (Decision::Bind(i), examined),
        None => (Decision::Unschedulable(Vec::new()), examined),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            allocatable: Requests {
                cpu_millis: 4000,
                memory: 8 << 30,
            },
            max_pods: 110,
            ..NodeInfo::default()
        }
    }

    fn place(pod: &PodInfo, nodes: &mut [NodeInfo], seed: &mut u64) -> Option<usize> {
        let (decision, _) = schedule(pod, nodes, 0, || {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            *seed >> 33
        });
        let Decision::Bind(i) = decision else {
            return None;
        };
        let n = &mut nodes[i];
        n.requested = n.requested.plus(pod.requests);
        n.requested_for_score = n.requested_for_score.plus(pod.requests_for_score());
        n.pods += 1;
        if let Some(o) = &pod.owner {
            *n.owner_pods.entry(o.clone()).or_default() += 1;
        }
        Some(i)
    }

    #[test]
    fn filters_name_their_reason() {
        let pod = PodInfo {
            requests: Requests {
                cpu_millis: 500,
                memory: 0,
            },
            ..PodInfo::default()
        };
        let cases: Vec<(NodeInfo, Option<Unfit>)> = vec![
            (node("ok"), None),
            (
                NodeInfo {
                    ready: false,
                    ..node("a")
                },
                Some(Unfit::NotReady),
            ),
            (
                NodeInfo {
                    unschedulable: true,
                    ..node("b")
                },
                Some(Unfit::Unschedulable),
            ),
            (
                NodeInfo {
                    taints: vec![Taint {
                        key: "k".into(),
                        value: "v".into(),
                        effect: "NoSchedule".into(),
                    }],
                    ..node("c")
                },
                Some(Unfit::Taint),
            ),
            (
                NodeInfo {
                    taints: vec![Taint {
                        key: "k".into(),
                        value: "v".into(),
                        effect: "PreferNoSchedule".into(),
                    }],
                    ..node("d")
                },
                None,
            ),
            (
                NodeInfo {
                    requested: Requests {
                        cpu_millis: 3600,
                        memory: 0,
                    },
                    ..node("e")
                },
                Some(Unfit::Cpu),
            ),
            (
                NodeInfo {
                    pods: 110,
                    ..node("f")
                },
                Some(Unfit::Pods),
            ),
        ];
        for (n, expected) in cases {
            assert_eq!(fits(&pod, &n).err(), expected, "{}", n.name);
        }
        let mut labelled = node("g");
        labelled.labels.insert("disk".into(), "ssd".into());
        let picky = PodInfo {
            node_selector: vec![("disk".into(), "ssd".into())],
            host_ports: vec![("TCP".into(), 80)],
            ..PodInfo::default()
        };
        assert_eq!(fits(&picky, &node("h")), Err(Unfit::Selector));
        assert_eq!(fits(&picky, &labelled), Ok(()));
        labelled.host_ports.insert(("TCP".into(), 80));
        assert_eq!(fits(&picky, &labelled), Err(Unfit::HostPort));
    }

    #[test]
    fn tolerations_match_like_kubernetes() {
        let taint = Taint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
            effect: "NoExecute".into(),
        };
        let exists_all = Toleration {
            operator: "Exists".into(),
            ..Toleration::default()
        };
        let by_key = Toleration {
            key: taint.key.clone(),
            operator: "Exists".into(),
            ..Toleration::default()
        };
        let wrong_effect = Toleration {
            effect: "NoSchedule".into(),
            ..by_key.clone()
        };
        let equal = Toleration {
            key: "k".into(),
            operator: "Equal".into(),
            value: "v".into(),
            effect: String::new(),
        };
        assert!(exists_all.tolerates(&taint));
        assert!(by_key.tolerates(&taint));
        assert!(!wrong_effect.tolerates(&taint));
        assert!(equal.tolerates(&Taint {
            key: "k".into(),
            value: "v".into(),
            effect: "NoSchedule".into()
        }));
        assert!(!equal.tolerates(&Taint {
            key: "k".into(),
            value: "w".into(),
            effect: "NoSchedule".into()
        }));
    }

    #[test]
    fn replicas_spread_evenly_over_identical_nodes() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        let pod = PodInfo {
            owner: Some("rs-1".into()),
            ..PodInfo::default()
        };
        let mut seed = 7;
        for _ in 0..9 {
            assert!(place(&pod, &mut nodes, &mut seed).is_some());
        }
        let counts: Vec<i64> = nodes.iter().map(|n| n.pods).collect();
        assert_eq!(counts, vec![3, 3, 3]);
    }

    #[test]
    fn least_allocated_prefers_the_emptier_node() {
        let mut busy = node("busy");
        busy.requested_for_score = Requests {
            cpu_millis: 3000,
            memory: 4 << 30,
        };
        let nodes = vec![busy, node("idle")];
        let (decision, examined) = schedule(&PodInfo::default(), &nodes, 0, || 0);
        assert_eq!(decision, Decision::Bind(1));
        assert_eq!(examined, 2);
    }

    #[test]
    fn unschedulable_pods_get_kube_scheduler_messages() {
        let nodes = vec![
            NodeInfo {
                ready: false,
                ..node("a")
            },
            NodeInfo {
                ready: false,
                ..node("b")
            },
            NodeInfo {
                unschedulable: true,
                ..node("c")
            },
        ];
        let (decision, _) = schedule(&PodInfo::default(), &nodes, 0, || 0);
        let Decision::Unschedulable(reasons) = decision else {
            panic!("no node is usable");
        };
        assert_eq!(
            unschedulable_message(3, &reasons),
            "0/3 nodes are available: 2 node(s) were not ready, 1 node(s) were unschedulable."
        );
    }

    #[test]
    fn large_clusters_search_a_share_of_nodes() {
        assert_eq!(feasible_to_find(50), 50);
        assert_eq!(feasible_to_find(1000), 420);
        assert_eq!(feasible_to_find(5000), 500);
        let nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i}"))).collect();
        let (decision, examined) = schedule(&PodInfo::default(), &nodes, 990, || 0);
        assert_eq!(examined, 420);
        assert!(matches!(decision, Decision::Bind(_)));
    }
}

//! Nemeses: the faults, and the schedule that injects them.
//!
//! The schedule alternates a quiet period and a faulty period until the
//! workload stops; each faulty period applies one fault of the list (taken in
//! turn), and heals it at the period's end. Network faults are grudges
//! ([`crate::net::Grudge`]), computed by pure functions here:
//! - `partition`: random halves (the majority side chosen at random);
//! - `partition-ring`: nodes on a random ring, each hearing only its nearest
//!   neighbours, so that every node sees a majority but no two see the same
//!   one (five nodes: each hears two neighbours);
//! - `isolate-leader`: the current leader alone;
//! - `bridge`: two halves joined by one node that hears both.
//!
//! Process faults: `kill` (SIGKILL a random non-empty subset, restart them by
//! their own command at the end), `pause` (SIGSTOP one node — the leader half
//! the time — for the whole period, far past the election timeout and the
//! leader lease), `member` (remove a member with `ctl member remove`, kill
//! and wipe it; at the end it joins again with a fresh master token).
//!
//! And one for the snapshot path: `snapshot` cuts one member off, and at the
//! end of the period builds a snapshot on every other member and purges their
//! logs (`ctl cluster snapshot`) before healing, so the member left behind can
//! only catch up by installing a snapshot streamed from the leader.
//!
//! Each applied fault is recorded as a [`Period`] for the reports.

use crate::cluster::Cluster;
use crate::net::{Grudge, Net};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Random halves.
    Partition,
    /// Majorities ring.
    PartitionRing,
    /// The leader cut off.
    IsolateLeader,
    /// Two halves joined by one node.
    Bridge,
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Remove a member and add it again.
    Member,
    /// Cut a member off, snapshot and purge the others' logs, heal: it must
    /// catch up by installing a snapshot.
    Snapshot,
}

/// Every fault, in the order `--nemesis all` uses.
pub const ALL: [Fault; 8] = [
    Fault::Partition,
    Fault::PartitionRing,
    Fault::IsolateLeader,
    Fault::Bridge,
    Fault::Kill,
    Fault::Pause,
    Fault::Member,
    Fault::Snapshot,
];

impl Fault {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::PartitionRing => "partition-ring",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Bridge => "bridge",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Member => "member",
            Fault::Snapshot => "snapshot",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        ALL.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown nemesis {s:?}: expected one of {}, all, none",
                names.join(", ")
            )
        })
    }
}

/// Parses `partition,kill`, `all` or `none`.
///
/// # Errors
/// Names an unknown fault.
pub fn parse_list(text: &str) -> Result<Vec<Fault>, String> {
    let mut faults = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => faults.extend(ALL),
            "none" => {}
            other => faults.push(other.parse()?),
        }
    }
    faults.dedup();
    Ok(faults)
}

/// A fault as it was applied.
#[derive(Serialize, Clone, Debug)]
pub struct Period {
    /// The fault.
    pub fault: Fault,
    /// Nanoseconds since the start when it was applied.
    pub start: u64,
    /// When it was healed (None: still active when the run ended).
    pub end: Option<u64>,
    /// What exactly was done.
    pub detail: String,
}

/// Grudge for components: each node drops packets from every node outside
/// its own component.
pub fn components(n: usize, parts: &[Vec<usize>]) -> Grudge {
    let mut grudge = Grudge::new();
    for part in parts {
        let inside: BTreeSet<usize> = part.iter().copied().collect();
        for &node in part {
            grudge.insert(node, (0..n).filter(|o| !inside.contains(o)).collect());
        }
    }
    grudge
}

/// Random halves: one side has a majority.
pub fn halves(n: usize, rng: &mut impl Rng) -> (Vec<Vec<usize>>, Grudge) {
    let mut nodes: Vec<usize> = (0..n).collect();
    nodes.shuffle(rng);
    let (a, b) = nodes.split_at(n / 2);
    let parts = vec![a.to_vec(), b.to_vec()];
    let grudge = components(n, &parts);
    (parts, grudge)
}

/// The majorities ring: nodes on a random ring, each hearing the nodes
/// within ring distance `d`, the smallest `d` giving it a majority.
pub fn ring(n: usize, rng: &mut impl Rng) -> (Vec<usize>, Grudge) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let majority = n / 2 + 1;
    let d = (majority - 1).div_ceil(2);
    let mut grudge = Grudge::new();
    for (pos, &node) in order.iter().enumerate() {
        let hears: BTreeSet<usize> = (0..=2 * d).map(|k| order[(pos + n + k - d) % n]).collect();
        grudge.insert(node, (0..n).filter(|o| !hears.contains(o)).collect());
    }
    (order, grudge)
}

/// Two halves joined by one node that hears both.
pub fn bridge(n: usize, rng: &mut impl Rng) -> (Vec<usize>, usize, Vec<usize>, Grudge) {
    let mut nodes: Vec<usize> = (0..n).collect();
    nodes.shuffle(rng);
    let left = nodes[..n / 2].to_vec();
    let middle = nodes[n / 2];
    let right = nodes[n / 2 + 1..].to_vec();
    let mut grudge = Grudge::new();
    for &l in &left {
        grudge.insert(l, right.iter().copied().collect());
    }
    for &r in &right {
        grudge.insert(r, left.iter().copied().collect());
    }
    grudge.insert(middle, BTreeSet::new());
    (left, middle, right, grudge)
}

/// What the nemesis did: the faults applied, and the ones it could not apply
/// (for instance `isolate-leader` while no leader was known), with why.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Faults applied.
    pub periods: Vec<Period>,
    /// Faults that could not be applied or healed, with the reason.
    pub errors: Vec<String>,
}

/// Timing of the schedule.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Quiet time between faults.
    pub quiet: Duration,
    /// How long each fault lasts.
    pub fault: Duration,
}

/// What a fault left to undo.
enum Active {
    Grudge,
    Lagging(usize),
    Killed(Vec<usize>),
    Paused(usize),
    Removed(usize),
}

/// Injects faults into the cluster on a schedule.
pub struct Nemesis {
    faults: Vec<Fault>,
    net: Arc<Net>,
    cluster: Arc<Mutex<Cluster>>,
    schedule: Schedule,
    rng: StdRng,
    clock: crate::history::Recorder,
    log: Log,
}

fn names(cluster: &Cluster, nodes: &[usize]) -> String {
    let names: Vec<&str> = nodes
        .iter()
        .map(|&i| cluster.members[i].name.as_str())
        .collect();
    names.join(" ")
}

impl Nemesis {
    /// A nemesis applying `faults` in turn.
    pub fn new(
        faults: Vec<Fault>,
        net: Arc<Net>,
        cluster: Arc<Mutex<Cluster>>,
        schedule: Schedule,
        seed: u64,
        clock: crate::history::Recorder,
    ) -> Nemesis {
        Nemesis {
            faults,
            net,
            cluster,
            schedule,
            rng: StdRng::seed_from_u64(seed),
            clock,
            log: Log::default(),
        }
    }

    /// Runs the schedule until `stop`, heals whatever is active, and returns
    /// what it did.
    pub async fn run(mut self, stop: CancellationToken) -> Log {
        if self.faults.is_empty() {
            stop.cancelled().await;
            return self.log;
        }
        let mut turn = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.schedule.quiet) => {}
            }
            let fault = self.faults[turn % self.faults.len()];
            turn += 1;
            let active = match self.start(fault).await {
                Ok(active) => active,
                Err(e) => {
                    tracing::warn!(%fault, "could not apply the fault: {e}");
                    self.log.errors.push(format!(
                        "{:.1}s: {fault} not applied: {e}",
                        self.clock.now() as f64 / 1e9
                    ));
                    continue;
                }
            };
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(self.schedule.fault) => {}
            }
            self.end(active).await;
            if stop.is_cancelled() {
                break;
            }
        }
        self.log
    }

    async fn start(&mut self, fault: Fault) -> Result<Active, String> {
        let cluster = self.cluster.clone();
        let mut cluster = cluster.lock().await;
        let n = cluster.members.len();
        let (active, detail) = match fault {
            Fault::Partition => {
                let (parts, grudge) = halves(n, &mut self.rng);
                self.apply(grudge).await?;
                let sides: Vec<String> = parts.iter().map(|p| names(&cluster, p)).collect();
                (Active::Grudge, format!("[{}]", sides.join("] | [")))
            }
            Fault::PartitionRing => {
                let (order, grudge) = ring(n, &mut self.rng);
                self.apply(grudge).await?;
                (Active::Grudge, format!("ring {}", names(&cluster, &order)))
            }
            Fault::IsolateLeader => {
                let leader = cluster.leader().await.ok_or("no leader to isolate")?;
                let rest: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
                self.apply(components(n, &[vec![leader], rest])).await?;
                (
                    Active::Grudge,
                    format!("leader {} isolated", cluster.members[leader].name),
                )
            }
            Fault::Bridge => {
                let (left, middle, right, grudge) = bridge(n, &mut self.rng);
                self.apply(grudge).await?;
                let detail = format!(
                    "[{}] <- {} -> [{}]",
                    names(&cluster, &left),
                    cluster.members[middle].name,
                    names(&cluster, &right)
                );
                (Active::Grudge, detail)
            }
            Fault::Kill => {
                let mut nodes: Vec<usize> = (0..n).collect();
                nodes.shuffle(&mut self.rng);
                nodes.truncate(self.rng.gen_range(1..=n));
                nodes.sort_unstable();
                for &i in &nodes {
                    cluster.kill(i).await;
                }
                let detail = format!("killed {}", names(&cluster, &nodes));
                (Active::Killed(nodes), detail)
            }
            Fault::Pause => {
                let leader = if self.rng.gen_bool(0.5) {
                    cluster.leader().await
                } else {
                    None
                };
                let target = leader.unwrap_or_else(|| self.rng.gen_range(0..n));
                cluster
                    .signal_pause(target, true)
                    .map_err(|e| e.to_string())?;
                let role = if leader.is_some() { " (leader)" } else { "" };
                (
                    Active::Paused(target),
                    format!("paused {}{role}", cluster.members[target].name),
                )
            }
            Fault::Snapshot => {
                let target = self.rng.gen_range(0..n);
                let rest: Vec<usize> = (0..n).filter(|&i| i != target).collect();
                self.apply(components(n, &[vec![target], rest])).await?;
                (
                    Active::Lagging(target),
                    format!(
                        "{} cut off while the others purge their logs",
                        cluster.members[target].name
                    ),
                )
            }
            Fault::Member => {
                let target = self.rng.gen_range(0..n);
                cluster.remove(target).await.map_err(|e| e.to_string())?;
                (
                    Active::Removed(target),
                    format!("removed {}", cluster.members[target].name),
                )
            }
        };
        tracing::info!(%fault, %detail, "fault");
        self.log.periods.push(Period {
            fault,
            start: self.clock.now(),
            end: None,
            detail,
        });
        Ok(active)
    }

    async fn apply(&self, grudge: Grudge) -> Result<(), String> {
        let net = self.net.clone();
        tokio::task::spawn_blocking(move || net.apply(&grudge))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn end(&mut self, active: Active) {
        let cluster = self.cluster.clone();
        let mut cluster = cluster.lock().await;
        let healed = match active {
            Active::Grudge => {
                let net = self.net.clone();
                match tokio::task::spawn_blocking(move || net.heal()).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Active::Lagging(target) => {
                for i in cluster.reachable().into_iter().filter(|&i| i != target) {
                    if let Err(e) = cluster.ctl_at(i, &["cluster", "snapshot"]).await {
                        tracing::warn!(member = %cluster.members[i].name, "snapshot failed: {e}");
                    }
                }
                let net = self.net.clone();
                match tokio::task::spawn_blocking(move || net.heal()).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Active::Killed(nodes) => nodes
                .into_iter()
                .try_for_each(|i| cluster.restart(i))
                .map_err(|e| e.to_string()),
            Active::Paused(i) => cluster.signal_pause(i, false).map_err(|e| e.to_string()),
            Active::Removed(i) => cluster.rejoin(i).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = healed {
            tracing::warn!("healing failed: {e}; the final heal retries");
            self.log.errors.push(format!(
                "{:.1}s: healing failed: {e}",
                self.clock.now() as f64 / 1e9
            ));
        }
        if let Some(period) = self.log.periods.last_mut() {
            period.end = Some(self.clock.now());
        }
    }
}

/// Heals everything: network grudges, paused and killed members, removed
/// members (they join again).
///
/// # Errors
/// When a heal step fails.
pub async fn heal_all(net: &Net, cluster: &mut Cluster) -> Result<(), String> {
    net.heal().map_err(|e| e.to_string())?;
    for i in 0..cluster.members.len() {
        if cluster.members[i].paused {
            cluster.signal_pause(i, false).map_err(|e| e.to_string())?;
        }
    }
    for i in 0..cluster.members.len() {
        cluster.restart(i).map_err(|e| e.to_string())?;
    }
    for i in 0..cluster.members.len() {
        if cluster.members[i].removed {
            cluster.rejoin(i).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hears(grudge: &Grudge, n: usize, node: usize) -> BTreeSet<usize> {
        (0..n).filter(|o| !grudge[&node].contains(o)).collect()
    }

    #[test]
    fn ring_gives_every_node_a_different_majority() {
        let mut rng = StdRng::seed_from_u64(1);
        let (_, grudge) = ring(5, &mut rng);
        let views: BTreeSet<BTreeSet<usize>> = (0..5).map(|i| hears(&grudge, 5, i)).collect();
        assert_eq!(views.len(), 5, "five distinct views");
        assert!(views.iter().all(|v| v.len() == 3));
    }

    #[test]
    fn halves_leave_one_majority() {
        let mut rng = StdRng::seed_from_u64(2);
        let (parts, grudge) = halves(5, &mut rng);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 3]);
        for part in &parts {
            for &node in part {
                assert_eq!(hears(&grudge, 5, node).len(), part.len());
            }
        }
    }

    #[test]
    fn bridge_node_hears_everyone_and_halves_do_not_hear_each_other() {
        let mut rng = StdRng::seed_from_u64(3);
        let (left, middle, right, grudge) = bridge(5, &mut rng);
        assert_eq!(hears(&grudge, 5, middle).len(), 5);
        for &l in &left {
            assert!(right.iter().all(|r| grudge[&l].contains(r)));
            assert!(!grudge[&l].contains(&middle));
        }
    }

    #[test]
    fn nemesis_lists_parse() {
        assert_eq!(
            parse_list("partition,kill"),
            Ok(vec![Fault::Partition, Fault::Kill])
        );
        assert_eq!(parse_list("all").map(|l| l.len()), Ok(8));
        assert_eq!(parse_list("none"), Ok(vec![]));
        assert!(parse_list("flood").is_err());
    }
}

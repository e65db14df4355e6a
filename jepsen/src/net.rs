//! The test network: one network namespace per master, joined by a bridge.
//!
//! ```text
//!   host namespace (clients, the harness)      10.203.S.1  bridge {prefix}b
//!     ├── veth {prefix}h1 ─── {prefix}n1 in netns {prefix}-1   10.203.S.11
//!     ├── veth {prefix}h2 ─── {prefix}n2 in netns {prefix}-2   10.203.S.12
//!     └── ...
//! ```
//!
//! Faults are Jepsen's *grudges*: a node holding a grudge against another
//! drops every packet from it (`iptables -A INPUT -s PEER -j DROP` inside the
//! node's namespace). Clients reach the masters from the host through the
//! bridge address, which no grudge names, so clients are never partitioned.
//!
//! Names and the subnet are unique per run: the prefix is `fj` + the
//! harness's pid + a letter per run in this process, and the subnet's third
//! octet `S` is claimed by creating a directory under [`LOCK_ROOT`], which
//! fails if another run holds it. Everything is removed by [`Net::teardown`]
//! (also on drop); [`cleanup_stale`] removes what runs that died left behind,
//! recognised by the dead pid in their prefix.
//!
//! The host firewall may drop bridged traffic (Docker sets the FORWARD policy
//! to DROP while `br_netfilter` hands bridged frames to iptables), so the
//! bridge gets an ACCEPT rule in FORWARD, tagged with the prefix as comment.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where subnet claims live: one directory per claimed third octet.
pub const LOCK_ROOT: &str = "/run/flotilla-jepsen";
/// First two octets of every test subnet.
const NET_PREFIX: [u8; 2] = [10, 203];
/// Host part of the first node's address (node i gets this + i).
const FIRST_HOST: u8 = 10;

/// Runs created by this process so far (gives each a letter).
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Errors of network set-up and faults.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A command could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its standard error.
        stderr: String,
    },
    /// Every test subnet is taken.
    #[error("no free 10.203.x.0/24 subnet (all claimed under {LOCK_ROOT})")]
    NoSubnet,
    /// A lock directory could not be made or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, NetError>;

/// Runs `program args...`, returning its standard output.
///
/// # Errors
/// When it cannot start or exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetError::Failed {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command whose failure only matters as a log line (teardown).
fn best_effort(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        tracing::debug!("{e}");
    }
}

/// One node's place in the network.
#[derive(Clone, Debug)]
pub struct Host {
    /// The network namespace.
    pub netns: String,
    /// The node's address.
    pub ip: Ipv4Addr,
    /// The veth end on the bridge.
    pub host_if: String,
    /// The veth end inside the namespace.
    pub node_if: String,
}

/// Which nodes drop packets from which: node -> nodes it does not hear.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// A test network. Removed on drop.
#[derive(Debug)]
pub struct Net {
    /// Prefix of every name this run creates.
    pub prefix: String,
    /// The bridge.
    pub bridge: String,
    /// The bridge's (the clients') address.
    pub gateway: Ipv4Addr,
    /// The nodes, in order.
    pub hosts: Vec<Host>,
    lock: PathBuf,
    torn_down: bool,
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name made by this module (`fj<pid><letter>...`), if any.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("fj")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = rest[digits.len()..].chars().next()?;
    if !after.is_ascii_lowercase() {
        return None;
    }
    digits.parse().ok()
}

fn stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !pid_alive(pid))
}

/// Removes namespaces (and the processes in them), links, firewall rules and
/// subnet claims left by runs whose harness is no longer alive.
pub fn cleanup_stale() {
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale(ns) {
                tracing::info!(netns = ns, "removing a namespace left by a dead run");
                kill_namespace_processes(ns);
                best_effort("ip", &["netns", "del", ns]);
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for line in links.lines() {
            let Some(name) = line.split(':').nth(1) else {
                continue;
            };
            let name = name.trim().split('@').next().unwrap_or_default();
            if stale(name) {
                tracing::info!(link = name, "removing a link left by a dead run");
                best_effort("ip", &["link", "del", name]);
            }
        }
    }
    if let Ok(rules) = run("iptables", &["-w", "-S", "FORWARD"]) {
        for rule in rules.lines() {
            let Some(comment) = rule.split("--comment ").nth(1) else {
                continue;
            };
            let tag = comment.split_whitespace().next().unwrap_or_default();
            if stale(tag.trim_matches('"')) {
                if let Some(spec) = rule.strip_prefix("-A ") {
                    let mut args = vec!["-w", "-D"];
                    args.extend(spec.split_whitespace().map(|a| a.trim_matches('"')));
                    best_effort("iptables", &args);
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(LOCK_ROOT) {
        for entry in dir.flatten() {
            let owner = std::fs::read_to_string(entry.path().join("owner")).unwrap_or_default();
            // A claim without an owner is being made right now, or its maker
            // died in between; only claims naming a dead owner are removed.
            if !owner.is_empty() && stale(owner.trim()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn kill_namespace_processes(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            best_effort("kill", &["-CONT", pid]);
            best_effort("kill", &["-KILL", pid]);
        }
    }
}

impl Net {
    /// Creates a bridge and `nodes` namespaces on a free subnet.
    ///
    /// # Errors
    /// When a command fails or no subnet is free; whatever was created is
    /// removed again.
    pub fn create(nodes: usize) -> Result<Net> {
        let letter = char::from(b'a' + (RUNS.fetch_add(1, Ordering::Relaxed) % 26) as u8);
        let prefix = format!("fj{}{letter}", std::process::id());
        let (octet, lock) = claim_subnet(&prefix)?;
        let hosts = (1..=nodes)
            .map(|i| Host {
                netns: format!("{prefix}-{i}"),
                ip: Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], octet, FIRST_HOST + i as u8),
                host_if: format!("{prefix}h{i}"),
                node_if: format!("{prefix}n{i}"),
            })
            .collect();
        let mut net = Net {
            bridge: format!("{prefix}b"),
            gateway: Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], octet, 1),
            prefix,
            hosts,
            lock,
            torn_down: false,
        };
        if let Err(e) = net.build() {
            net.teardown();
            return Err(e);
        }
        Ok(net)
    }

    fn build(&self) -> Result<()> {
        let br = self.bridge.as_str();
        run("ip", &["link", "add", br, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{}/24", self.gateway), "dev", br],
        )?;
        run("ip", &["link", "set", br, "up"])?;
        run("iptables", &self.forward_rule("-I"))?;
        for host in &self.hosts {
            let ns = host.netns.as_str();
            run("ip", &["netns", "add", ns])?;
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &host.host_if,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &host.node_if,
                ],
            )?;
            run("ip", &["link", "set", &host.node_if, "netns", ns])?;
            run("ip", &["link", "set", &host.host_if, "master", br])?;
            run("ip", &["link", "set", &host.host_if, "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/24", host.ip),
                    "dev",
                    &host.node_if,
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", &host.node_if, "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn forward_rule(&self, action: &'static str) -> Vec<&str> {
        let br = self.bridge.as_str();
        vec![
            "-w",
            action,
            "FORWARD",
            "-i",
            br,
            "-o",
            br,
            "-m",
            "comment",
            "--comment",
            self.prefix.as_str(),
            "-j",
            "ACCEPT",
        ]
    }

    /// Makes each node drop packets from the nodes it holds a grudge against,
    /// replacing any earlier grudge.
    ///
    /// # Errors
    /// When iptables fails.
    pub fn apply(&self, grudge: &Grudge) -> Result<()> {
        self.heal()?;
        for (node, peers) in grudge {
            let Some(host) = self.hosts.get(*node) else {
                continue;
            };
            for peer in peers {
                let Some(from) = self.hosts.get(*peer) else {
                    continue;
                };
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &host.netns,
                        "iptables",
                        "-w",
                        "-A",
                        "INPUT",
                        "-s",
                        &from.ip.to_string(),
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every grudge.
    ///
    /// # Errors
    /// When iptables fails.
    pub fn heal(&self) -> Result<()> {
        for host in &self.hosts {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &host.netns,
                    "iptables",
                    "-w",
                    "-F",
                    "INPUT",
                ],
            )?;
        }
        Ok(())
    }

    /// Removes everything this network created, killing processes still in
    /// its namespaces. Idempotent; errors are logged, not returned, so one
    /// failure does not leave the rest behind.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for host in &self.hosts {
            kill_namespace_processes(&host.netns);
            best_effort("ip", &["netns", "del", &host.netns]);
            // Deleting the namespace deletes the pair; this covers a failed
            // move into the namespace.
            best_effort("ip", &["link", "del", &host.host_if]);
        }
        best_effort("ip", &["link", "del", &self.bridge]);
        while run("iptables", &self.forward_rule("-D")).is_ok() {}
        let _ = std::fs::remove_dir_all(&self.lock);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Claims a free third octet by creating `LOCK_ROOT/<octet>`.
fn claim_subnet(prefix: &str) -> Result<(u8, PathBuf)> {
    let root = Path::new(LOCK_ROOT);
    std::fs::create_dir_all(root).map_err(|source| NetError::Io {
        path: root.into(),
        source,
    })?;
    let in_use = run("ip", &["-o", "-4", "addr", "show"]).unwrap_or_default();
    let start = (std::process::id() as usize * 7 + RUNS.load(Ordering::Relaxed) * 13) % 200;
    for offset in 0..200 {
        let octet = 20 + ((start + offset) % 200) as u8;
        let subnet = format!("{}.{}.{octet}.", NET_PREFIX[0], NET_PREFIX[1]);
        if in_use.contains(&subnet) {
            continue;
        }
        let lock = root.join(octet.to_string());
        match std::fs::create_dir(&lock) {
            Ok(()) => {
                std::fs::write(lock.join("owner"), prefix).map_err(|source| NetError::Io {
                    path: lock.clone(),
                    source,
                })?;
                return Ok((octet, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(NetError::Io { path: lock, source }),
        }
    }
    Err(NetError::NoSubnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_our_names() {
        assert_eq!(owner_pid("fj1234a-3"), Some(1234));
        assert_eq!(owner_pid("fj77bh2"), Some(77));
        assert_eq!(owner_pid("fj1234"), None);
        assert_eq!(owner_pid("fj12-3"), None);
        assert_eq!(owner_pid("docker0"), None);
        assert_eq!(owner_pid("fjx"), None);
    }
}

//! The short fault runs CI does: three real masters in network namespaces,
//! `partition`, `kill` and `snapshot` (a member catching up by snapshot),
//! each checked valid; and serializable reads under
//! `partition`, which must be caught invalid — the proof that the checker can
//! fail.
//!
//! These need root (namespaces, iptables) and the `ctl` binary: found at
//! `$FLOTILLA_CTL`, else `$CARGO_TARGET_DIR/debug/ctl`, else
//! `<workspace>/target/debug/ctl` (`cargo test --workspace` builds it). When
//! either is missing the tests fail with what to do, never skip. The runs are
//! serialized: on two cores, three clusters at once would measure the machine
//! rather than the store.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ctl() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("FLOTILLA_CTL") {
        candidates.push(PathBuf::from(path));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug").join("ctl"));
    }
    candidates.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("debug")
            .join("ctl"),
    );
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "no ctl binary at any of {candidates:?}: run `cargo build --bin ctl` (or set FLOTILLA_CTL)"
        ),
    }
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line");
    assert_eq!(
        uid, "0",
        "the jepsen tests create network namespaces and iptables rules: run them as root"
    );
}

struct Run {
    code: Option<i32>,
    results: serde_json::Value,
    stdout: String,
    stderr: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "flotilla-jepsen-{name}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            std::fs::create_dir_all(&path).expect("create test dir");
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

fn jepsen(name: &str, args: &[&str]) -> Run {
    require_root();
    let ctl = ctl();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempdir::Dir::new(name);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .arg("test")
        .args(args)
        .arg("--out")
        .arg(&dir.0)
        .arg("--ctl")
        .arg(&ctl)
        .env("JEPSEN_LOG", "info")
        .output()
        .expect("run jepsen");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("{name}: {:?}\n{stdout}", started.elapsed());
    let results = std::fs::read(dir.0.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "{name}: no results.json (exit {:?})\n{stdout}\n{stderr}",
                output.status.code()
            )
        });
    for file in ["history.jsonl", "latency.svg", "rate.svg", "timeline.html"] {
        assert!(dir.0.join(file).is_file(), "{name}: {file} missing");
    }
    Run {
        code: output.status.code(),
        results,
        stdout,
        stderr,
        _dir: dir,
    }
}

fn assert_valid(name: &str, run: &Run, min_ok: u64) {
    assert_eq!(
        run.results["valid"],
        serde_json::json!(true),
        "{name} must check valid:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, Some(0), "{name}: exit status of a valid run");
    assert!(
        run.results["final_reads_ok"].as_bool() == Some(true),
        "{name}: final reads"
    );
    let ok = run.results["ok"].as_u64().unwrap_or(0);
    assert!(ok >= min_ok, "{name}: only {ok} acknowledged operations");
    assert!(
        !run.results["faults"].as_array().is_none_or(Vec::is_empty),
        "{name}: no fault was applied"
    );
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Namespaces, links and firewall rules named with the run's prefix.
fn leftovers(prefix: &str) -> Vec<String> {
    let netns = command_output("ip", &["netns", "list"]);
    let links = command_output("ip", &["-o", "link", "show"]);
    let rules = command_output("iptables", &["-w", "-S", "FORWARD"]);
    [netns, links, rules]
        .iter()
        .flat_map(|text| text.lines())
        .filter(|line| line.contains(prefix))
        .map(str::to_owned)
        .collect()
}

/// Everything the run created is gone (namespace removal is asynchronous in
/// the kernel, hence the short wait).
fn assert_nothing_left(run: &Run) {
    let prefix = run.results["network_prefix"]
        .as_str()
        .expect("results name the network prefix")
        .to_owned();
    assert!(prefix.starts_with("fj"), "prefix {prefix:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = leftovers(&prefix);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = leftovers(&prefix);
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn partition_three_nodes_is_valid() {
    let run = jepsen(
        "partition",
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--time-limit",
            "25",
            "--quiet",
            "3",
            "--fault-duration",
            "6",
            "--rate",
            "80",
            "--seed",
            "1",
        ],
    );
    assert_valid("partition", &run, 300);
    assert_nothing_left(&run);
}

#[test]
fn kill_three_nodes_is_valid() {
    let run = jepsen(
        "kill",
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "kill",
            "--time-limit",
            "25",
            "--quiet",
            "3",
            "--fault-duration",
            "5",
            "--rate",
            "80",
            "--seed",
            "2",
        ],
    );
    assert_valid("kill", &run, 200);
    assert_nothing_left(&run);
}

#[test]
fn lagging_member_catches_up_by_snapshot_and_stays_valid() {
    let run = jepsen(
        "snapshot",
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "snapshot",
            "--time-limit",
            "20",
            "--quiet",
            "2",
            "--fault-duration",
            "5",
            "--rate",
            "100",
            "--seed",
            "4",
        ],
    );
    assert_valid("snapshot", &run, 200);
    let installs: u64 = run.results["members"]
        .as_object()
        .expect("member statuses")
        .values()
        .filter_map(|m| m["snapshot_installs"].as_u64())
        .sum();
    assert!(
        installs > 0,
        "a member cut off while the others purged their logs must install a snapshot: {}",
        run.results["members"]
    );
    assert_nothing_left(&run);
}

#[test]
fn serializable_reads_under_partition_are_caught() {
    let run = jepsen(
        "serializable",
        &[
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--consistency",
            "serializable",
            "--time-limit",
            "30",
            "--quiet",
            "3",
            "--fault-duration",
            "8",
            "--rate",
            "100",
            "--seed",
            "3",
        ],
    );
    assert_eq!(
        run.results["valid"],
        serde_json::json!(false),
        "stale serializable reads under partition must be caught:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, Some(1), "exit status of an invalid run");
    let failures = run.results["failures"].as_array().expect("failures");
    assert!(
        !failures.is_empty(),
        "an invalid run names its failing keys"
    );
    let breaking = &failures[0]["breaking"];
    assert!(
        breaking["op"].as_str().is_some_and(|op| !op.is_empty()),
        "the evidence names the operation that breaks linearizability: {breaking}"
    );
    assert!(failures[0]["linearizable_prefix"].as_u64().is_some());
    assert_nothing_left(&run);
}

/// Watchers on every member, reconnecting through partitions and kills while
/// a compactor trims the history: every acknowledged write is seen by every
/// watcher exactly once and in revision order (or falls in a gap compaction
/// reported to it).
#[test]
fn watchers_see_every_write_once_through_partitions_and_kills() {
    let run = jepsen(
        "watch",
        &[
            "--nodes",
            "3",
            "--workload",
            "watch",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "25",
            "--quiet",
            "3",
            "--fault-duration",
            "6",
            "--rate",
            "60",
            "--seed",
            "5",
        ],
    );
    assert_valid("watch", &run, 300);
    let watch = &run.results["watch"];
    assert_eq!(watch["watchers"], 3, "{watch}");
    assert!(
        watch["events"].as_u64().unwrap_or(0) >= 3 * 300,
        "every watcher saw the writes: {watch}"
    );
    assert!(
        watch["compactions"].as_u64().unwrap_or(0) >= 1,
        "the history was compacted during the run: {watch}"
    );
    assert_nothing_left(&run);
}

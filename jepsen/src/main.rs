//! `jepsen`: the command line of the partition-test harness.
//!
//! `jepsen test ...` runs one test and exits 0 only when its history checks
//! valid (1: invalid, 2: unknown, 3: the harness itself failed).
//! `jepsen check --history FILE` checks a recorded register history again.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flotilla_jepsen::checker::{self, register::Register, Budget, Verdict};
use flotilla_jepsen::client::Consistency;
use flotilla_jepsen::history::Event;
use flotilla_jepsen::nemesis::{self, Schedule};
use flotilla_jepsen::report::Validity;
use flotilla_jepsen::run::{self, Options};
use flotilla_jepsen::workload::Workload;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Jepsen-style fault-injection tests of Flotilla's replicated store.
#[derive(Parser, Debug)]
#[command(name = "jepsen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a cluster in network namespaces, run a workload under faults, check it.
    Test(TestArgs),
    /// Check a recorded register history (history.jsonl) again.
    Check {
        /// The history file.
        #[arg(long)]
        history: PathBuf,
        /// Seconds the checker may spend per key.
        #[arg(long, default_value_t = 60)]
        key_budget: u64,
    },
}

#[derive(clap::Args, Debug)]
struct TestArgs {
    /// Number of masters (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Register)]
    workload: Workload,
    /// Comma-separated faults: partition, partition-ring, isolate-leader,
    /// bridge, kill, pause, member; or all, or none.
    #[arg(long, default_value = "partition", value_parser = nemesis::parse_list)]
    nemesis: std::vec::Vec<nemesis::Fault>,
    /// Seconds the workload runs.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Operations per second offered by all clients together.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Client workers (default: two per node).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Read consistency of the clients' reads.
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    consistency: Consistency,
    /// Seed of the harness's random choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// The ctl binary (default: $FLOTILLA_CTL, else ctl beside this binary,
    /// else $CARGO_TARGET_DIR/debug/ctl).
    #[arg(long)]
    ctl: Option<PathBuf>,
    /// Seconds of quiet between faults.
    #[arg(long, default_value_t = 5)]
    quiet: u64,
    /// Seconds each fault lasts.
    #[arg(long, default_value_t = 10)]
    fault_duration: u64,
    /// Seconds the checker may spend per key before answering unknown.
    #[arg(long, default_value_t = 60)]
    key_budget: u64,
    /// MiB of search cache the checker may use per key before answering unknown.
    #[arg(long, default_value_t = 512)]
    key_memory: usize,
}

fn find_ctl(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(explicit);
    candidates.extend(std::env::var_os("FLOTILLA_CTL").map(PathBuf::from));
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("ctl"));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug").join("ctl"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no ctl binary (looked at {}): run `cargo build --bin ctl`, or pass --ctl PATH",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JEPSEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Cancels `token` on SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("signal received: stopping and cleaning up");
        token.cancel();
    });
    Ok(())
}

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let ctl = find_ctl(args.ctl)?;
    let nodes = usize::from(args.nodes);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let options = Options {
        nodes,
        workload: args.workload,
        faults: args.nemesis,
        time_limit: Duration::from_secs(args.time_limit),
        rate: args.rate,
        concurrency: args.concurrency.unwrap_or(2 * nodes).max(1),
        consistency: args.consistency,
        seed,
        out: args.out.clone(),
        ctl,
        schedule: Schedule {
            quiet: Duration::from_secs(args.quiet),
            fault: Duration::from_secs(args.fault_duration),
        },
        budget: Budget {
            time: Duration::from_secs(args.key_budget),
            memory: args.key_memory << 20,
        },
    };
    let interrupt = CancellationToken::new();
    cancel_on_signal(interrupt.clone())?;
    let results = run::run(&options, interrupt).await?;
    let verdict = match results.valid {
        Validity::Valid => "VALID",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "UNKNOWN",
    };
    println!(
        "{verdict}: {} workload, {} nodes, nemesis [{}], {}s, consistency {:?}, seed {}",
        serde_json::to_value(results.workload)?
            .as_str()
            .unwrap_or("?"),
        results.nodes,
        results.nemesis.join(","),
        results.time_limit,
        results.consistency,
        results.seed
    );
    println!(
        "  operations: {} invoked, {} ok, {} fail, {} info; {} faults applied; {} keys checked in {:.1}s",
        results.invoked,
        results.ok,
        results.fail,
        results.info,
        results.faults.len(),
        results.keys,
        results.check_seconds
    );
    for failure in &results.failures {
        println!(
            "  key {}: not linearizable after {} operations; breaking operation: {}",
            failure.key,
            failure.linearizable_prefix,
            failure
                .breaking
                .as_ref()
                .map(|b| format!("#{} {} (p{}, {:?})", b.index, b.op, b.process, b.node))
                .unwrap_or_default()
        );
    }
    for unknown in &results.unknown_keys {
        println!("  key {}: unknown ({})", unknown.key, unknown.reason);
    }
    if let Some(set) = &results.set {
        println!(
            "  set: {} attempted, {} acknowledged, {} lost, {} unexpected, {} final reads",
            set.attempted,
            set.acknowledged,
            set.lost.len(),
            set.unexpected.len(),
            set.final_reads
        );
    }
    if let Some(e) = &results.final_error {
        println!("  {e}");
    }
    let out = args.out.display();
    println!("  results:  {out}/results.json\n  history:  {out}/history.jsonl\n  plots:    {out}/latency.svg {out}/rate.svg\n  timeline: {out}/timeline.html\n  logs:     {}", results.logs);
    Ok(match results.valid {
        Validity::Valid => ExitCode::SUCCESS,
        Validity::Invalid => ExitCode::from(1),
        Validity::Unknown => ExitCode::from(2),
    })
}

fn check(history: &Path, key_budget: u64) -> anyhow::Result<ExitCode> {
    let file =
        std::fs::File::open(history).with_context(|| format!("open {}", history.display()))?;
    let mut events: Vec<Event> = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))?);
    }
    let keys = checker::register::split(&events)?;
    let budget = Budget {
        time: Duration::from_secs(key_budget),
        ..Budget::default()
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let verdicts = checker::check_parallel(&Register, &keys, budget, threads);
    let mut code = ExitCode::SUCCESS;
    let (mut invalid, mut unknown) = (0, 0);
    for ((key, ops), verdict) in keys.iter().zip(&verdicts) {
        match verdict {
            Verdict::Valid => {}
            Verdict::Invalid(evidence) => {
                invalid += 1;
                println!(
                    "{key}: INVALID after {} of {} operations; breaking operation #{}",
                    evidence.prefix.len(),
                    ops.len(),
                    evidence.breaking
                );
            }
            Verdict::Unknown(why) => {
                unknown += 1;
                println!("{key}: UNKNOWN ({why})");
            }
        }
    }
    if invalid > 0 {
        code = ExitCode::from(1);
    } else if unknown > 0 {
        code = ExitCode::from(2);
    }
    println!(
        "{} keys: {} valid, {invalid} invalid, {unknown} unknown",
        keys.len(),
        keys.len() - invalid - unknown
    );
    Ok(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Check {
            history,
            key_budget,
        } => check(&history, key_budget),
        Command::Test(args) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(test(args)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

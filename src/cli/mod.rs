//! The command line: `ctl init | join | token | member | cluster | kv | bench`.
//!
//! Server commands (`init`, `join`) run a master in the foreground. Client
//! commands find the cluster through `--server` or the kubeconfig
//! (`--kubeconfig`, else `$KUBECONFIG`) and talk to it with [`crate::client::Client`].
//! Errors are printed as one line saying what was wrong, and exit with status 1.

mod kv;
mod members;
mod objects;
mod output;

use crate::agent::process::RuntimeKind;
use crate::bench;
use crate::client::kubeconfig::Kubeconfig;
use crate::client::Client;
use crate::master;
use crate::security::tokens::Role;
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flotilla: a container orchestrator whose masters replicate their own store.
#[derive(Parser, Debug)]
#[command(name = "ctl", version, about)]
pub struct Cli {
    /// Kubeconfig to find the cluster and credential in.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// A master to talk to (HOST:PORT or URL); overrides the kubeconfig's server.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format for commands scripts read.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// A human-readable table or value.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Flags of a member shared by `init` and `join`.
#[derive(Args, Debug, Clone)]
pub struct MemberFlags {
    /// Directory for this member's data.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to listen on (HOST:PORT).
    #[arg(long)]
    pub listen: Option<String>,
    /// Address other members and clients reach this one at (defaults to --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Member name (defaults to the host name).
    #[arg(long, alias = "node-name")]
    pub name: Option<String>,
    /// Build a snapshot and purge the log behind it every N applied entries.
    #[arg(long, default_value_t = 20_000, hide = true)]
    pub snapshot_every: u64,
    /// Minimum election timeout (the maximum is twice it).
    #[arg(long, default_value = "300ms", value_parser = parse_duration, hide = true)]
    pub election_timeout: Duration,
    /// Connections from clients that are not members, at most (members
    /// have a reserve of their own beyond this).
    #[arg(long, default_value_t = crate::https::Limits::default().max_connections, hide = true)]
    pub max_connections: usize,
    /// Time a client has to send a request's head, and the longest a
    /// connection may idle between requests.
    #[arg(long, default_value = "30s", value_parser = parse_duration, hide = true)]
    pub header_read_timeout: Duration,
}

impl MemberFlags {
    fn options(&self) -> master::Options {
        master::Options {
            settings: crate::store::settings::Settings::default(),
            agent: None,
            network: crate::agent::network::Flags::default(),
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            advertise: self.advertise.clone(),
            name: self.name.clone(),
            raft: flotilla_raft::Config {
                snapshot_every: self.snapshot_every,
                election_timeout: (self.election_timeout, self.election_timeout * 2),
                ..flotilla_raft::Config::default()
            },
            limits: crate::https::Limits {
                max_connections: self.max_connections,
                header_read_timeout: self.header_read_timeout,
                ..crate::https::Limits::default()
            },
        }
    }
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a cluster with this machine as its first master, and serve.
    Init {
        #[command(flatten)]
        member: MemberFlags,
        /// Do not run a worker agent in this process.
        #[arg(long)]
        no_agent: bool,
        /// Container runtime of the in-process agent.
        #[arg(long, value_enum, default_value_t = RuntimeKind::Docker)]
        runtime: RuntimeKind,
        /// A node silent this long is marked unreachable (cluster setting).
        #[arg(long, default_value = "40s", value_parser = parse_duration)]
        node_monitor_grace_period: Duration,
        /// Pods of a node not ready this long are replaced (cluster setting).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        pod_eviction_timeout: Duration,
        /// The cluster's pod network, carved into one range per node (cluster setting).
        #[arg(long, default_value = "10.244.0.0/16")]
        pod_cidr: crate::objects::podcidr::Cidr,
        /// Prefix length of each node's pod range (cluster setting).
        #[arg(long, default_value_t = crate::objects::podcidr::DEFAULT_NODE_MASK)]
        node_cidr_mask_size: u8,
        #[command(flatten)]
        network: crate::agent::network::Flags,
    },
    /// Join a cluster as a master (--control-plane) or as a worker, and serve.
    Join {
        /// Any master of the cluster (HOST:PORT).
        server: String,
        /// A join token from `ctl init` or `ctl token create` (not needed to
        /// resume from an existing data directory).
        #[arg(long)]
        token: Option<String>,
        /// Join as a master (needs a master token).
        #[arg(long)]
        control_plane: bool,
        #[command(flatten)]
        member: MemberFlags,
        /// Container runtime of a worker.
        #[arg(long, value_enum, default_value_t = RuntimeKind::Docker)]
        runtime: RuntimeKind,
        #[command(flatten)]
        network: crate::agent::network::Flags,
    },
    /// Manage join tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List or remove masters.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Read and write the raw store (debugging).
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Load generators.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Create or update objects from manifests (files, directories, or - for stdin).
    Apply(objects::ApplyArgs),
    /// List objects, or show one, as a table, YAML, JSON or names.
    Get(objects::GetArgs),
    /// Show an object in detail, with its events.
    Describe(objects::DescribeArgs),
    /// Delete objects by type and name, or those of manifests.
    Delete(objects::DeleteArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(objects::ScaleArgs),
    /// Follow rollouts.
    #[command(subcommand)]
    Rollout(objects::RolloutCommand),
    /// Print a pod's logs.
    Logs(objects::LogsArgs),
}

/// `ctl token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a join token and print it alone on stdout.
    Create {
        /// What the token joins as.
        #[arg(long, value_enum, default_value_t = Role::Worker)]
        role: Role,
        /// Lifetime, e.g. 30m, 24h.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// List tokens (never their secrets).
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (the part before the dot).
        id: String,
    },
}

/// `ctl member ...`
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// List the masters.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Remove a master from the cluster.
    Remove {
        /// The member's name.
        name: String,
    },
}

/// `ctl cluster ...`
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Members, roles, leader, term, and each member's health and applied index.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Build a snapshot on the member --server names and purge its log.
    Snapshot,
}

/// `ctl bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Kubernetes API latency and scale: create, get, list, watch fan-out.
    Api {
        /// Comma-separated HOST:PORT list (default: the kubeconfig's masters).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        /// Pods created and read back in the latency phases.
        #[arg(long, default_value_t = 2000)]
        creates: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Pods in the namespace when listing.
        #[arg(long, default_value_t = 10_000)]
        list_pods: usize,
        /// Concurrent watches.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Pods created while the watches run.
        #[arg(long, default_value_t = 100)]
        watch_events: usize,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Scheduling throughput: hollow nodes, many pods, create to bound and Running.
    Scheduler {
        /// Hollow nodes to start in this process.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Pods to create.
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        /// Give up after this long.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Pod start-up latency on the Docker workers: create to Running.
    Startup {
        /// Pods to start.
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// Creates per second (0: as fast as the API takes them).
        #[arg(long, default_value_t = 0.0)]
        qps: f64,
        /// Give up waiting after this long.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Key-value throughput and latency, against Flotilla or etcd.
    Kv {
        /// Which store to drive.
        #[arg(long, value_enum, default_value_t = bench::kv::Target::Flotilla)]
        target: bench::kv::Target,
        /// Comma-separated HOST:PORT list (default: the kubeconfig's masters).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        /// Operation mix.
        #[arg(long, value_enum)]
        op: bench::kv::Operation,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Total operations.
        #[arg(long, default_value_t = 10_000)]
        ops: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// Distinct keys.
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Parses `30s`, `5m`, `24h`, `500ms`.
///
/// # Errors
/// A message that shows the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 30s, 5m, 24h"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A server's Status reads as kubectl prints it, without "error: ".
            match e.downcast_ref::<objects::ServerError>() {
                Some(status) => eprintln!("{status}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init {
            member,
            no_agent,
            runtime,
            node_monitor_grace_period,
            pod_eviction_timeout,
            pod_cidr,
            node_cidr_mask_size,
            network,
        } => {
            crate::objects::podcidr::check(*pod_cidr, *node_cidr_mask_size)
                .map_err(anyhow::Error::msg)?;
            let mut options = member.options();
            options.settings = crate::store::settings::Settings {
                node_monitor_grace_period: *node_monitor_grace_period,
                pod_eviction_timeout: *pod_eviction_timeout,
                pod_cidr: *pod_cidr,
                node_cidr_mask_size: *node_cidr_mask_size,
            };
            options.agent = (!no_agent).then_some(*runtime);
            options.network = network.clone();
            master::run(master::Start::Init, options).await
        }
        Command::Join {
            server,
            token,
            control_plane,
            member,
            runtime,
            network,
        } => {
            if *control_plane {
                let token = match token {
                    Some(token) => token.clone(),
                    None if master::Identity::load(&member.data_dir)?.is_some() => String::new(),
                    None => anyhow::bail!(
                        "joining needs --token: a master token from `ctl token create --role master`"
                    ),
                };
                let start = master::Start::Join {
                    server: server.clone(),
                    token,
                };
                return master::run(start, member.options()).await;
            }
            worker(server, token.as_deref(), member, *runtime, network).await
        }
        Command::Token(command) => members::token(&connect(&cli)?, command).await,
        Command::Member(command) => members::member(&connect(&cli)?, command).await,
        Command::Cluster(command) => members::cluster(&connect(&cli)?, command, &cli).await,
        Command::Kv(command) => kv::run(&connect(&cli)?, command).await,
        Command::Apply(args) => objects::apply(&connect(&cli)?, args).await,
        Command::Get(args) => objects::get(&connect(&cli)?, args).await,
        Command::Describe(args) => objects::describe(&connect(&cli)?, args).await,
        Command::Delete(args) => objects::delete(&connect(&cli)?, args).await,
        Command::Scale(args) => objects::scale(&connect(&cli)?, args).await,
        Command::Rollout(command) => objects::rollout(&connect(&cli)?, command).await,
        Command::Logs(args) => objects::logs(&connect(&cli)?, args).await,
        Command::Bench(BenchCommand::Api {
            endpoints,
            creates,
            clients,
            list_pods,
            watchers,
            watch_events,
            output,
        }) => {
            let (endpoints, selection) = bench_target(&cli, endpoints).await?;
            let options = bench::api::Options {
                endpoints,
                token: selection.token,
                ca_pem: selection.ca_pem,
                creates: *creates,
                clients: *clients,
                list_pods: *list_pods,
                watchers: *watchers,
                watch_events: *watch_events,
            };
            let report = bench::api::run(&options).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Table => print!("{}", report.table()),
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Scheduler {
            nodes,
            pods,
            timeout,
            output,
        }) => {
            let client = connect(&cli)?;
            client.learn_members().await;
            let options = bench::scheduler::Options {
                nodes: *nodes,
                pods: *pods,
                timeout: *timeout,
            };
            let report = bench::scheduler::run(&client, &options).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Table => print!("{}", report.table()),
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Startup {
            pods,
            qps,
            timeout,
            output,
        }) => {
            let client = connect(&cli)?;
            client.learn_members().await;
            let options = bench::startup::Options {
                pods: *pods,
                qps: *qps,
                timeout: *timeout,
            };
            let report = bench::startup::run(&client, &options).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Table => print!("{}", report.table()),
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Kv {
            target,
            endpoints,
            op,
            clients,
            ops,
            value_size,
            keys,
            output,
        }) => {
            let (endpoints, token, ca_pem) = if *target == bench::kv::Target::Flotilla {
                let (endpoints, selection) = bench_target(&cli, endpoints).await?;
                (endpoints, selection.token, selection.ca_pem)
            } else {
                (endpoints.clone(), None, None)
            };
            if endpoints.is_empty() {
                anyhow::bail!("no endpoints: pass --endpoints HOST:PORT,...");
            }
            let options = bench::kv::Options {
                target: *target,
                endpoints,
                op: *op,
                clients: *clients,
                ops: *ops,
                value_size: *value_size,
                token,
                ca_pem,
                keys: *keys,
            };
            let report = bench::kv::run(&options).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Table => println!("{}", report.table()),
            }
            Ok(())
        }
    }
}

/// `ctl join` without `--control-plane`: a worker agent until SIGTERM.
async fn worker(
    server: &str,
    token: Option<&str>,
    member: &MemberFlags,
    runtime: RuntimeKind,
    network: &crate::agent::network::Flags,
) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    master::cancel_on_signal(stop.clone())?;
    let address = member.advertise.as_deref().map(|a| {
        a.rsplit_once(':')
            .map_or(a, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    });
    let options = crate::agent::process::Options {
        server: Some(server.to_owned()),
        token: token.map(str::to_owned),
        data_dir: member.data_dir.clone(),
        name: member.name.clone(),
        address,
        listen: member.listen.clone(),
        runtime,
        capacity: None,
        network: network.clone(),
    };
    crate::agent::process::run(options, stop).await
}

/// What the flags and the kubeconfig select.
pub(crate) struct Selection {
    /// Masters to try first.
    pub servers: Vec<String>,
    /// Admin bearer token.
    pub token: Option<String>,
    /// The cluster CA (PEM).
    pub ca_pem: Option<String>,
    /// Where learned member addresses are cached.
    pub cache: Option<PathBuf>,
}

/// The server(s), token and CA the flags and kubeconfig select.
fn selected(cli: &Cli) -> anyhow::Result<Selection> {
    let from_file = match &cli.kubeconfig {
        Some(path) => {
            let config = Kubeconfig::load(path)?;
            Some((config.selected(path)?, path.clone()))
        }
        None => None,
    };
    let token = from_file.as_ref().and_then(|(s, _)| s.token.clone());
    let ca_pem = from_file.as_ref().and_then(|(s, _)| s.ca_pem.clone());
    let servers = match (&cli.server, &from_file) {
        (Some(server), _) => vec![server.clone()],
        (None, Some((s, _))) => vec![s.server.clone()],
        (None, None) => anyhow::bail!(
            "no cluster given: pass --kubeconfig PATH (or set KUBECONFIG, e.g. to DATA_DIR/admin.kubeconfig) or --server HOST:PORT"
        ),
    };
    let cache = from_file.map(|(_, path)| path.with_extension("members.json"));
    Ok(Selection {
        servers,
        token,
        ca_pem,
        cache,
    })
}

/// The masters a benchmark drives (`--endpoints`, else every member the
/// cluster names) and the credentials the kubeconfig selects.
async fn bench_target(cli: &Cli, endpoints: &[String]) -> anyhow::Result<(Vec<String>, Selection)> {
    let client = connect(cli)?;
    client.learn_members().await;
    let endpoints = if endpoints.is_empty() {
        client.known_masters()
    } else {
        endpoints.to_vec()
    };
    Ok((endpoints, selected(cli)?))
}

fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let selection = selected(cli)?;
    // With an explicit --server, talk to that master only (e.g. to snapshot it).
    let cache = if cli.server.is_some() {
        None
    } else {
        selection.cache
    };
    Client::new(
        &selection.servers,
        selection.token,
        selection.ca_pem.as_deref(),
        cache,
    )
    .context("building the HTTP client")
}

//! A control-plane member: `ctl init`, `ctl join --control-plane`, and serving.
//!
//! Starting a master is: read or create its [`Identity`], bind the listener,
//! start the replicated store ([`flotilla_raft::Node`]), serve the API, and —
//! on first start only — bootstrap (create the cluster, or finish joining it).
//! SIGTERM and SIGINT stop it gracefully: the listener stops accepting,
//! in-flight requests get a few seconds, then Raft shuts down.

pub mod identity;

use crate::api::{self, Context};
use crate::client::kubeconfig::Kubeconfig;
use crate::client::{self, Client};
use crate::https as tls;
use crate::security::{self, pki, tokens, tokens::Role};
use crate::wire::{JoinComplete, JoinGrant, JoinRequest, MemberView};
use anyhow::{bail, Context as _};
pub use identity::Identity;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Default address masters listen on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6443";
/// Lifetime of the tokens `ctl init` prints.
pub const INIT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Time in-flight requests get after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a master runs, from `ctl init` / `ctl join` flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory.
    pub data_dir: PathBuf,
    /// `HOST:PORT` to listen on.
    pub listen: Option<String>,
    /// `HOST:PORT` to advertise (defaults to `listen`).
    pub advertise: Option<String>,
    /// Member name (defaults to the host name).
    pub name: Option<String>,
    /// Raft tuning.
    pub raft: flotilla_raft::Config,
    /// Settings of the control loops (recorded by `ctl init`).
    pub settings: crate::store::settings::Settings,
    /// Run a worker agent in this process, with this runtime.
    pub agent: Option<crate::agent::process::RuntimeKind>,
    /// Connection limits of the API port.
    pub limits: tls::Limits,
    /// The in-process agent's pod network flags.
    pub network: crate::agent::network::Flags,
}

/// How a master comes to be.
#[derive(Debug, Clone)]
pub enum Start {
    /// `ctl init`: a new cluster.
    Init,
    /// `ctl join SERVER --token TOKEN --control-plane`.
    Join {
        /// Any master of the cluster.
        server: String,
        /// A master join token.
        token: String,
    },
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The admin kubeconfig path in a data directory.
pub fn admin_kubeconfig(data_dir: &Path) -> PathBuf {
    absolute(data_dir).join("admin.kubeconfig")
}

/// Runs a master until SIGTERM or SIGINT.
///
/// # Errors
/// When the data directory, the listener, the store or the join fails.
pub async fn run(start: Start, options: Options) -> anyhow::Result<()> {
    // Listen for signals before anything else, so a SIGTERM that arrives
    // during start-up or bootstrap is never lost.
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    tls::raise_fd_limit();
    security::create_private_dir(&options.data_dir)
        .with_context(|| format!("creating {}", options.data_dir.display()))?;
    let existing = Identity::load(&options.data_dir)?;
    let listen = options
        .listen
        .clone()
        .or_else(|| existing.as_ref().map(|i| i.listen.clone()))
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let advertise = options
        .advertise
        .clone()
        .or_else(|| existing.as_ref().map(|i| i.advertise.clone()))
        .unwrap_or_else(|| local.to_string());
    if advertise.starts_with("0.0.0.0") || advertise.starts_with("[::]") {
        bail!("--listen {listen} is a wildcard address: pass --advertise HOST:PORT so other members can reach this one");
    }
    let name = options
        .name
        .clone()
        .or_else(|| existing.as_ref().map(|i| i.name.clone()))
        .unwrap_or_else(crate::host::name);

    let identity = match (&existing, &start) {
        (Some(identity), _) => {
            println!(
                "Resuming member {} ({:x}) of cluster {} from {}",
                identity.name,
                identity.id,
                identity.cluster_id,
                options.data_dir.display()
            );
            identity.clone()
        }
        (None, Start::Init) => {
            pki::install(
                &options.data_dir,
                &pki::Authority::generate()?,
                &pki::Authority::generate_agent()?,
                &cert_hosts(&listen, &advertise),
            )?;
            let identity = Identity {
                cluster_id: security::random_string(12),
                id: 1 + (rand::random::<u64>() >> 2),
                name: name.clone(),
                listen: listen.clone(),
                advertise: advertise.clone(),
                peer_secret: security::random_string(40),
                admin_token: security::random_string(40),
                founder: true,
                joined: true,
            };
            identity.save(&options.data_dir)?;
            identity
        }
        (None, Start::Join { server, token }) => {
            let grant = request_join(server, token, &name, &advertise, None).await?;
            // The grant's CA must be the one the token pins (the connection
            // trusts it, but a leader elsewhere answered through a redirect).
            if let Some(expected) = tokens::ca_fingerprint(token) {
                pki::pinned(&grant.ca.cert_pem, &expected)
                    .with_context(|| format!("{server} granted the join with another CA"))?;
            }
            // A leader from before agent CAs sends none: make one (the
            // leader's agents then cannot serve this member's log proxy
            // until they join again).
            let agent_ca = match grant.agent_ca.clone() {
                Some(agent_ca) => agent_ca,
                None => pki::Authority::generate_agent()?,
            };
            pki::install(
                &options.data_dir,
                &grant.ca,
                &agent_ca,
                &cert_hosts(&listen, &advertise),
            )?;
            let identity = Identity {
                cluster_id: grant.cluster_id,
                id: grant.id,
                name: name.clone(),
                listen: listen.clone(),
                advertise: advertise.clone(),
                peer_secret: grant.peer_secret,
                admin_token: grant.admin_token,
                founder: false,
                joined: false,
            };
            identity.save(&options.data_dir)?;
            identity
        }
    };

    let ca = pki::load_authority(&options.data_dir).context(
        "this member's certificates are missing; was the data directory copied without pki/?",
    )?;
    let agent_ca = pki::load_or_create_agent_authority(&options.data_dir)?;
    let tls = pki::server_config(&pki::load_serving(&options.data_dir)?)?;
    let raft_config = flotilla_raft::Config {
        ca_pem: Some(ca.cert_pem.clone()),
        id: identity.id,
        member: flotilla_raft::Member {
            name: identity.name.clone(),
            addr: identity.advertise.clone(),
        },
        data_dir: options.data_dir.join("raft"),
        peer_secret: identity.peer_secret.clone(),
        ..options.raft.clone()
    };
    let node = flotilla_raft::Node::start(raft_config)
        .await
        .context("starting the replicated store")?;
    let ctx = Arc::new(Context {
        node: node.clone(),
        store: crate::store::Store::new(node.clone()),
        cluster_id: identity.cluster_id.clone(),
        admin_token: identity.admin_token.clone(),
        peer_secret: identity.peer_secret.clone(),
        metrics: Arc::default(),
        membership_lock: tokio::sync::Mutex::new(()),
        ca,
        agent_ca,
    });
    let server = tokio::spawn(tls::serve(
        listener,
        tls,
        api::router(ctx.clone()),
        options.limits,
        member_addresses(ctx.node.clone()),
        shutdown.clone(),
    ));
    tokio::spawn(crate::controllers::run(ctx.store.clone(), shutdown.clone()));
    tracing::info!(name = %identity.name, id = format_args!("{:x}", identity.id), %local, "master serving");

    let bootstrap = bootstrap(&ctx, &identity, &start, &options);
    let mut worker_token = None;
    tokio::select! {
        result = bootstrap => {
            match result {
                Ok(token) => worker_token = token,
                Err(e) => {
                    shutdown.cancel();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
                    let _ = node.shutdown().await;
                    return Err(e);
                }
            }
        }
        () = shutdown.cancelled() => {}
    }
    let agent = options
        .agent
        .filter(|_| !shutdown.is_cancelled())
        .map(|runtime| {
            let host = identity
                .advertise
                .rsplit_once(':')
                .map_or(identity.advertise.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let agent_options = crate::agent::process::Options {
                server: Some(identity.advertise.clone()),
                token: worker_token,
                data_dir: options.data_dir.join("agent"),
                name: Some(identity.name.clone()),
                address: Some(host),
                listen: None,
                runtime,
                capacity: None,
                network: options.network.clone(),
            };
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::agent::process::run(agent_options, stop).await {
                    tracing::error!("the in-process agent stopped: {e:#}");
                }
            })
        });
    shutdown.cancelled().await;
    if let Some(agent) = agent {
        // The agent leaves its containers running; it only stops its loops.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, agent).await;
    }
    tracing::info!("shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
    node.shutdown().await.context("stopping raft")?;
    Ok(())
}

/// First-start work: create the cluster, or finish joining it. On a new
/// cluster, returns the worker token (for the in-process agent).
async fn bootstrap(
    ctx: &Arc<Context>,
    identity: &Identity,
    start: &Start,
    options: &Options,
) -> anyhow::Result<Option<String>> {
    let data_dir = options.data_dir.as_path();
    let mut worker_token = None;
    let kubeconfig = admin_kubeconfig(data_dir);
    if identity.founder && !ctx.node.is_initialized().await? {
        ctx.node.initialize().await?;
        wait_for_leadership(ctx).await?;
        let master = api::cluster::create_token(ctx, Role::Master, INIT_TOKEN_TTL).await?;
        let worker = api::cluster::create_token(ctx, Role::Worker, INIT_TOKEN_TTL).await?;
        for namespace in api::rest::INITIAL_NAMESPACES {
            api::rest::ensure_namespace(ctx, namespace).await?;
        }
        ctx.node
            .write(flotilla_storage::Request {
                id: None,
                command: options.settings.command()?,
            })
            .await
            .context("recording the cluster settings")?;
        // Last: its existence tells scripts and tests the cluster is ready.
        write_admin_kubeconfig(ctx, identity, &kubeconfig)?;
        worker_token = Some(worker.token.clone());
        let dir = absolute(data_dir);
        println!(
            "Flotilla cluster {} initialized; this member is {} at {}.\n\n\
             To use it:\n  export KUBECONFIG={}\n\n\
             To add a master (token valid 24h; `ctl token create --role master` makes more):\n  \
             ctl join {} --token {} --control-plane --data-dir DIR --listen HOST:PORT --name NAME\n\n\
             To add a worker:\n  ctl join {} --token {} --data-dir DIR",
            identity.cluster_id,
            identity.name,
            identity.advertise,
            kubeconfig.display(),
            identity.advertise,
            master.token,
            identity.advertise,
            worker.token,
        );
        tracing::debug!(data_dir = %dir.display(), "bootstrap complete");
        println!(
            "Control loops: a node silent for {} is marked unreachable; its pods are replaced after {}.",
            humantime::format_duration(options.settings.node_monitor_grace_period),
            humantime::format_duration(options.settings.pod_eviction_timeout)
        );
    } else if !identity.joined {
        let Start::Join { server, token } = start else {
            bail!(
                "{} holds a member that has not finished joining; run the same `ctl join SERVER --token TOKEN --control-plane` again to resume",
                data_dir.display()
            );
        };
        // Step one again: confirms the token and our id, and finds the leader.
        request_join(
            server,
            token,
            &identity.name,
            &identity.advertise,
            Some(identity.id),
        )
        .await?;
        println!("Catching up with the cluster's log as a learner...");
        let members: Vec<MemberView> = join_client(server, token)
            .await?
            .post_long(
                "/cluster/join/complete",
                &JoinComplete {
                    token: token.clone(),
                    id: identity.id,
                    name: identity.name.clone(),
                    address: identity.advertise.clone(),
                },
            )
            .await?;
        let mut joined = identity.clone();
        joined.joined = true;
        joined.save(data_dir)?;
        write_admin_kubeconfig(ctx, identity, &kubeconfig)?;
        let voters = members.iter().filter(|m| m.role == "voter").count();
        println!(
            "Joined cluster {} as voter {} ({} voters).\n\nTo use it:\n  export KUBECONFIG={}",
            identity.cluster_id,
            identity.name,
            voters,
            kubeconfig.display()
        );
    }
    Ok(worker_token)
}

/// Writes the admin kubeconfig: this member's URL, the CA, the admin token.
fn write_admin_kubeconfig(ctx: &Context, identity: &Identity, path: &Path) -> anyhow::Result<()> {
    Kubeconfig::admin(
        "flotilla",
        &client::base_url(&identity.advertise),
        &identity.admin_token,
        &ctx.ca.cert_pem,
    )
    .save(path)?;
    Ok(())
}

async fn wait_for_leadership(ctx: &Context) -> anyhow::Result<()> {
    let mut leadership = ctx.node.leadership();
    tokio::time::timeout(Duration::from_secs(30), leadership.wait_for(|l| l.is_self))
        .await
        .context("the new cluster elected no leader within 30s")?
        .context("raft stopped")?;
    Ok(())
}

/// A client for join requests: no admin credential (the token is in the
/// body), trusting only the token's CA (see [`trusted_client`]).
async fn join_client(server: &str, token: &str) -> anyhow::Result<JoinClient> {
    let (client, _) = trusted_client(server, token).await?;
    Ok(JoinClient(client))
}

/// A client of `server` trusting only the CA whose fingerprint `token`
/// carries, with that CA's PEM. The CA is fetched over a connection that is
/// not yet trusted and checked before anything secret is sent.
///
/// # Errors
/// A malformed token, an unreachable server, or a CA that is not the token's.
pub async fn trusted_client(server: &str, token: &str) -> anyhow::Result<(Client, String)> {
    tokens::parse(token)?;
    let Some(expected) = tokens::ca_fingerprint(token) else {
        bail!("the token has no CA fingerprint: use the whole token `ctl token create` prints (ID.SECRET.CAHASH)");
    };
    let probe = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/cluster/ca", client::base_url(server));
    let ca_pem = probe
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {server} to fetch its CA"))?
        .error_for_status()?
        .text()
        .await?;
    // Trust exactly the certificate whose hash the token carries.
    let ca_pem = pki::pinned(&ca_pem, &expected).map_err(|e| {
        anyhow::anyhow!(
            "{server} presents a CA the token does not pin ({e}): refusing to send the token to it (wrong cluster, or someone in between)"
        )
    })?;
    let client = Client::new(&[server.to_owned()], None, Some(&ca_pem), None)?;
    Ok((client, ca_pem))
}

struct JoinClient(Client);

impl JoinClient {
    async fn post_long<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let bytes = serde_json::to_vec(body)?;
        let response = self
            .0
            .send(
                reqwest::Method::POST,
                path,
                Some(bytes),
                client::Route::Leader,
                api::cluster::JOIN_TIMEOUT,
            )
            .await?;
        Ok(client::decode(response).await?)
    }
}

async fn request_join(
    server: &str,
    token: &str,
    name: &str,
    advertise: &str,
    id: Option<u64>,
) -> anyhow::Result<JoinGrant> {
    let request = JoinRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        address: advertise.to_owned(),
        id,
    };
    join_client(server, token)
        .await?
        .0
        .post("/cluster/join", &request)
        .await
        .map_err(|e| anyhow::anyhow!("join refused by {server}: {e}"))
}

/// The names a master's serving certificate covers: its advertised and
/// listen hosts, and loopback.
fn cert_hosts(listen: &str, advertise: &str) -> Vec<String> {
    let host = |addr: &str| -> String {
        let host = match addr.rsplit_once(':') {
            Some((host, _)) => host,
            None => addr,
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    };
    let mut hosts = vec![
        host(advertise),
        host(listen),
        "127.0.0.1".into(),
        "localhost".into(),
    ];
    hosts.retain(|h| !h.is_empty() && h != "0.0.0.0" && h != "::");
    hosts.dedup();
    let mut unique = Vec::new();
    for h in hosts {
        if !unique.contains(&h) {
            unique.push(h);
        }
    }
    unique
}

/// Whether a source address is a member's (the connection cap keeps a
/// reserve for them): the hosts of the current membership's addresses.
fn member_addresses(node: Arc<flotilla_raft::Node>) -> tls::IsPeer {
    Arc::new(move |ip| {
        node.members().iter().any(|m| {
            m.member
                .addr
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip() == ip)
        })
    })
}

/// Cancels `token` on the first SIGTERM or SIGINT. The handlers are installed
/// before this returns.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        token.cancel();
    });
    Ok(())
}

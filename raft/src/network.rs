//! The client half of the Raft transport: RPCs to other masters over HTTP.
//!
//! Each RPC is a `POST /raft/<name>` whose body is the bincode request and whose
//! answer is the bincode of `Result<response, RaftError>`, authenticated with the
//! cluster's peer secret as a bearer token. Transport failures become openraft's
//! `Unreachable` (connection refused: openraft backs off) or `Network` errors;
//! an error the remote Raft returned becomes `RemoteError`. An AppendEntries
//! body over [`MAX_RPC_BODY`] (measured here, or refused by the peer with
//! 413) becomes `PayloadTooLarge`, so openraft sends fewer entries.

use crate::codec;
use crate::rpc::MAX_RPC_BODY;
use crate::types::{Member, MemberId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use std::time::Duration;

/// Path prefix of the Raft RPC routes.
pub const RPC_PREFIX: &str = "/raft";

/// A client builder that, given the cluster CA, speaks HTTPS trusting that CA
/// alone (no system roots); plain HTTP without one. Every HTTP client of the
/// project starts here, so trust is decided in one place.
///
/// # Errors
/// When `ca_pem` is not a PEM certificate.
pub fn client_builder(ca_pem: Option<&str>) -> reqwest::Result<reqwest::ClientBuilder> {
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none());
    Ok(match ca_pem {
        Some(pem) => builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?),
        None => builder,
    })
}

/// Builds the HTTP client used for peer traffic (see [`client_builder`]).
///
/// # Errors
/// When the CA is not valid PEM or the TLS setup fails.
pub fn http_client(timeout: Duration, ca_pem: Option<&str>) -> reqwest::Result<reqwest::Client> {
    client_builder(ca_pem)?
        .connect_timeout(Duration::from_millis(500))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
}

/// `https` when peers talk TLS (a CA is configured), else `http`.
pub fn scheme(ca_pem: Option<&str>) -> &'static str {
    if ca_pem.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Creates one [`Peer`] per target member.
#[derive(Clone)]
pub struct Network {
    client: reqwest::Client,
    secret: String,
    scheme: &'static str,
}

impl Network {
    /// A network that authenticates with `secret` and speaks `scheme`.
    pub fn new(client: reqwest::Client, secret: String, scheme: &'static str) -> Network {
        Network {
            client,
            secret,
            scheme,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> Peer {
        Peer {
            client: self.client.clone(),
            secret: self.secret.clone(),
            scheme: self.scheme,
            target,
            member: node.clone(),
            in_flight: None,
        }
    }
}

/// How long an AppendEntries that carries entries may take on the wire and
/// at the follower, whatever openraft's own deadline for it (see [`Peer`]).
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What an AppendEntries carries: its vote, where it starts and its last entry.
type AppendKey = (
    openraft::Vote<MemberId>,
    Option<crate::types::LogId>,
    Option<crate::types::LogId>,
);

/// An AppendEntries sent and not yet answered.
struct InFlight {
    key: AppendKey,
    task: tokio::task::JoinHandle<Result<bytes::Bytes, Failure>>,
}

/// The connection to one member.
///
/// openraft 0.9 gives every AppendEntries one heartbeat interval (100 ms)
/// and then drops it and sends the same entries again. A message of large
/// entries may need longer to cross, be appended and fsynced: dropped each
/// time, it would never arrive, and the follower never catch up. So an
/// AppendEntries with entries runs in a task of its own (bounded by
/// [`APPEND_TIMEOUT`]); when openraft sends the same entries again, the
/// call awaits the request already in flight instead of starting over, and
/// its answer (which depends only on what was sent) serves the retry.
pub struct Peer {
    client: reqwest::Client,
    secret: String,
    scheme: &'static str,
    target: MemberId,
    member: Member,
    in_flight: Option<InFlight>,
}

/// Why an RPC got no answer to decode.
enum Failure {
    /// Nothing listens there (openraft backs off).
    Unreachable(reqwest::Error),
    /// The request or its answer was lost or refused.
    Network(std::io::Error),
    /// The body is larger than the peer accepts ([`MAX_RPC_BODY`]), as we
    /// measured it or as the peer answered (413).
    TooLarge(String),
}

impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        rpc: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<MemberId, Member, RaftError<MemberId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        match self.post(rpc, request, option).await {
            Ok(bytes) => self.decode(&bytes),
            Err(Failure::Unreachable(e)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(Failure::Network(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(Failure::TooLarge(message)) => Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other(message),
            ))),
        }
    }

    /// Sends one RPC and returns the answer's bytes.
    async fn post<Req: Serialize>(
        &self,
        rpc: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<bytes::Bytes, Failure> {
        let (url, body) = self.prepare(rpc, request)?;
        send(
            self.client.clone(),
            url,
            self.secret.clone(),
            body,
            option.hard_ttl(),
            format!("{rpc} to {}", self.member),
        )
        .await
    }

    /// The URL and body of an RPC, refusing a body a peer would refuse.
    fn prepare<Req: Serialize>(
        &self,
        rpc: &str,
        request: &Req,
    ) -> Result<(String, Vec<u8>), Failure> {
        let body =
            codec::encode(request).map_err(|e| Failure::Network(std::io::Error::other(e)))?;
        if body.len() > MAX_RPC_BODY {
            return Err(Failure::TooLarge(format!(
                "{rpc} to {}: {} bytes is over the {MAX_RPC_BODY} bytes a peer accepts",
                self.member,
                body.len()
            )));
        }
        let url = format!(
            "{}://{}{}/{}",
            self.scheme, self.member.addr, RPC_PREFIX, rpc
        );
        Ok((url, body))
    }

    /// Sends an AppendEntries with entries, or joins the identical one in
    /// flight (see [`Peer`]).
    async fn append(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<bytes::Bytes, Failure> {
        let key: AppendKey = (
            rpc.vote,
            rpc.prev_log_id,
            rpc.entries.last().map(|e| e.log_id),
        );
        if self.in_flight.as_ref().is_none_or(|f| f.key != key) {
            let (url, body) = self.prepare("append", rpc)?;
            let task = tokio::spawn(send(
                self.client.clone(),
                url,
                self.secret.clone(),
                body,
                APPEND_TIMEOUT,
                format!("append to {}", self.member),
            ));
            self.in_flight = Some(InFlight { key, task });
        }
        let Some(in_flight) = self.in_flight.as_mut() else {
            return Err(Failure::Network(std::io::Error::other(
                "no request in flight",
            )));
        };
        // Cancel safety: openraft may drop this future at its deadline; the
        // task and its handle stay, for the retry to await.
        let outcome = (&mut in_flight.task).await;
        self.in_flight = None;
        outcome.unwrap_or_else(|e| Err(Failure::Network(std::io::Error::other(e))))
    }

    fn decode<Resp, E>(
        &self,
        bytes: &[u8],
    ) -> Result<Resp, RPCError<MemberId, Member, RaftError<MemberId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, RaftError<MemberId, E>> =
            codec::decode_rpc(bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.member.clone(),
                e,
            ))
        })
    }
}

/// Posts `body` to `url` with the peer secret; the answer's bytes.
async fn send(
    client: reqwest::Client,
    url: String,
    secret: String,
    body: Vec<u8>,
    timeout: Duration,
    what: String,
) -> Result<bytes::Bytes, Failure> {
    let response = client
        .post(url)
        .bearer_auth(&secret)
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                Failure::Unreachable(e)
            } else {
                Failure::Network(std::io::Error::other(e))
            }
        })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Failure::Network(std::io::Error::other(e)))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let message = format!("{what}: HTTP {status}: {text}");
        return Err(if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            Failure::TooLarge(message)
        } else {
            Failure::Network(std::io::Error::other(message))
        });
    }
    Ok(bytes)
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>>
    {
        // A body too large for the peer is reported as such, with half the
        // entries as the hint: openraft retries at once with fewer entries
        // (as a network error it would resend the same batch forever).
        let entries = u64::try_from(rpc.entries.len()).unwrap_or(u64::MAX);
        let sent = if rpc.entries.is_empty() {
            self.post("append", &rpc, &option).await
        } else {
            self.append(&rpc).await
        };
        match sent {
            Ok(bytes) => self.decode(&bytes),
            Err(Failure::TooLarge(message)) => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1))
                    .with_source_error(&std::io::Error::other(message)),
            )),
            Err(Failure::Unreachable(e)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(Failure::Network(e)) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, Member, RaftError<MemberId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>> {
        self.call("vote", &rpc, &option).await
    }
}

//! The client half of the Raft transport: RPCs to other masters over HTTP.
//!
//! Each RPC is a `POST /raft/<name>` whose body is the bincode request and whose
//! answer is the bincode of `Result<response, RaftError>`, authenticated with the
//! cluster's peer secret as a bearer token. Transport failures become openraft's
//! `Unreachable` (connection refused: openraft backs off) or `Network` errors;
//! an error the remote Raft returned becomes `RemoteError`.

use crate::codec;
use crate::types::{Member, MemberId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
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
        .pool_idle_timeout(Duration::from_secs(60))
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
        }
    }
}

/// The connection to one member.
pub struct Peer {
    client: reqwest::Client,
    secret: String,
    scheme: &'static str,
    target: MemberId,
    member: Member,
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
        let body = codec::encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let url = format!(
            "{}://{}{}/{}",
            self.scheme, self.member.addr, RPC_PREFIX, rpc
        );
        let response = self
            .client
            .post(url)
            .bearer_auth(&self.secret)
            .timeout(option.hard_ttl())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let err =
                std::io::Error::other(format!("{rpc} to {}: HTTP {status}: {text}", self.member));
            return Err(RPCError::Network(NetworkError::new(&err)));
        }
        let result: Result<Resp, RaftError<MemberId, E>> =
            codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.member.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>>
    {
        self.call("append", &rpc, &option).await
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

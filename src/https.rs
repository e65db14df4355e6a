//! The TLS server every master (and every agent) serves HTTP on, with the
//! limits that keep it serving under abuse.
//!
//! One accept loop; each connection runs in a task of its own, so a slow or
//! hostile client never holds up the others. What bounds a connection:
//! - the TLS handshake must finish within [`Limits::handshake_timeout`];
//! - each request's head must arrive within [`Limits::header_read_timeout`],
//!   counted from when the server starts waiting for it, so a slowloris
//!   client and an idle keep-alive connection (no request in flight) are both
//!   closed after it (hyper's HTTP/1 header-read timer);
//! - each request's body must arrive within [`Limits::body_timeout`] of its
//!   head (a body trickled byte by byte fails the request). Responses may
//!   stream for as long as they need (watches, `logs -f`).
//!
//! And the number of connections is capped: at most
//! [`Limits::max_connections`] from ordinary clients, plus
//! [`Limits::peer_reserve`] kept for the cluster's own members (by source
//! address), so Raft keeps its connections whatever clients do. When the cap
//! is reached, a new connection evicts the oldest connection that has not yet
//! sent a request head (an idle or slowloris one) rather than being refused;
//! a client that has sent requests keeps its connection.
//!
//! [`raise_fd_limit`] lifts the soft file-descriptor limit to the hard one at
//! start, so the cap, not the process limit, is what bites.

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's limits (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections from clients that are not members, at most.
    pub max_connections: usize,
    /// Connections kept for members (Raft peers, read-index forwarding).
    pub peer_reserve: usize,
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send a request's head, and the longest a connection may idle
    /// between requests.
    pub header_read_timeout: Duration,
    /// Time to send a request's body once its head arrived.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Far below the file-descriptor limit raised at start (usually
            // 2^19 or more), and enough for thousands of agents.
            max_connections: 8192,
            peer_reserve: 256,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            // kube-apiserver's read-header timeout is 32 s; the clients of
            // this project close pooled connections after 5 s idle, well
            // before this, so they never reuse one the server is closing.
            header_read_timeout: Duration::from_secs(30),
            // Bodies are at most a few MiB (API 1.5 MiB, Raft a few MiB).
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Which source addresses belong to the cluster's members.
pub type IsPeer = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Raises the soft limit on open files to the hard limit (best effort: a
/// failure is logged). Call once at start.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive
    // pointer to a local; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        tracing::warn!(
            "reading the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    if limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads one valid `rlimit` from a local; raising the
    // soft limit up to the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } != 0 {
        tracing::warn!(
            "raising the open-file limit: {}",
            std::io::Error::last_os_error()
        );
    } else {
        tracing::debug!(
            from = limit.rlim_cur,
            to = limit.rlim_max,
            "raised the open-file limit"
        );
    }
}

/// One admitted connection, as the registry sees it.
struct Slot {
    /// Where it comes from.
    source: IpAddr,
    /// Counted against the members' reserve.
    reserved: bool,
    /// A request head has arrived on it (not evictable any more).
    proven: Arc<AtomicBool>,
    /// Cancelled to close it.
    evict: CancellationToken,
}

#[derive(Default)]
struct Slots {
    /// By admission order: the first unproven one is the oldest.
    open: BTreeMap<u64, Slot>,
    next: u64,
    ordinary: usize,
    reserved: usize,
}

/// The connection table: admission, eviction, release.
struct Registry {
    limits: Limits,
    slots: Mutex<Slots>,
}

/// An admitted connection; dropping it frees its slot.
struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    proven: Arc<AtomicBool>,
    evict: CancellationToken,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut slots = self.registry.lock();
        if let Some(slot) = slots.open.remove(&self.id) {
            if slot.reserved {
                slots.reserved -= 1;
            } else {
                slots.ordinary -= 1;
            }
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `source`, a member's address when `peer`,
    /// evicting an unproven client connection when the clients' share is
    /// full: the oldest one of the source address holding the most unproven
    /// connections, so a flood from one address evicts its own connections
    /// before anyone else's.
    fn admit(self: &Arc<Self>, source: IpAddr, peer: bool) -> Option<Admitted> {
        let mut slots = self.lock();
        let reserved = peer && slots.reserved < self.limits.peer_reserve;
        if !reserved && slots.ordinary >= self.limits.max_connections {
            let mut unproven: std::collections::HashMap<IpAddr, (usize, u64)> =
                std::collections::HashMap::new();
            for (id, slot) in &slots.open {
                if !slot.reserved && !slot.proven.load(Ordering::Relaxed) {
                    unproven.entry(slot.source).or_insert((0, *id)).0 += 1;
                }
            }
            let (_, victim) = unproven
                .into_values()
                .max_by_key(|(count, id)| (*count, u64::MAX - id))?;
            if let Some(slot) = slots.open.remove(&victim) {
                slot.evict.cancel();
                slots.ordinary -= 1;
            }
        }
        let id = slots.next;
        slots.next += 1;
        let proven = Arc::new(AtomicBool::new(false));
        let evict = CancellationToken::new();
        slots.open.insert(
            id,
            Slot {
                source,
                reserved,
                proven: proven.clone(),
                evict: evict.clone(),
            },
        );
        if reserved {
            slots.reserved += 1;
        } else {
            slots.ordinary += 1;
        }
        Some(Admitted {
            registry: self.clone(),
            id,
            proven,
            evict,
        })
    }
}

/// Serves `router` over TLS on `tcp` until `shutdown`; then stops accepting,
/// lets in-flight requests finish, and returns when every connection closed
/// (callers bound that wait).
pub async fn serve(
    tcp: TcpListener,
    config: rustls::ServerConfig,
    router: Router,
    limits: Limits,
    is_peer: IsPeer,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let registry = Arc::new(Registry {
        limits,
        slots: Mutex::default(),
    });
    let tracker = TaskTracker::new();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let peer = is_peer(addr.ip());
        let Some(admitted) = registry.admit(addr.ip(), peer) else {
            tracing::debug!(%addr, "connection refused: at the connection cap");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(connection(
            stream,
            addr,
            acceptor.clone(),
            router.clone(),
            limits,
            admitted,
            shutdown.clone(),
        ));
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    limits: Limits,
    admitted: Admitted,
    shutdown: CancellationToken,
) {
    let evict = admitted.evict.clone();
    let tls = tokio::select! {
        handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)) => {
            match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "TLS handshake timed out");
                    return;
                }
            }
        }
        () = evict.cancelled() => return,
        () = shutdown.cancelled() => return,
    };
    let proven = admitted.proven.clone();
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        proven.store(true, Ordering::Relaxed);
        let request = request.map(|body| Body::new(Deadline::new(body, body_timeout)));
        let router = router.clone();
        async move {
            use hyper::service::Service as _;
            hyper_util::service::TowerToHyperService::new(router)
                .call(request)
                .await
        }
    });
    // HTTP/1.1 only (the only protocol offered in ALPN). Not hyper-util's
    // auto-detecting builder: it waits for a client's first bytes with no
    // timer, so a connection that never sends would be held forever.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%addr, "connection closed: {e}");
            }
        }
        () = evict.cancelled() => {
            tracing::debug!(%addr, "connection evicted: the cap was reached and it had sent no request");
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(admitted);
}

/// A request body that must arrive in full within a deadline.
struct Deadline {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Deadline {
        Deadline {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the request body did not arrive within {}s",
                this.timeout.as_secs()
            );
            return Poll::Ready(Some(Err(message.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

//! The caller side: a connection to a cluster with endpoint failover, leader
//! hints, time budgets and request ids, for any gRPC service an Orrery node
//! serves; the typed calls a pipeline runtime needs on top of it
//! ([`Client::list_modules`], [`Client::get_module`], [`Client::execute`],
//! in `calls.rs`) and a watch that follows the cluster across node failures
//! ([`Client::watch`], in `watch.rs`).
//!
//! [`Client::call`] runs one unary RPC:
//!
//! 1. It tries the endpoints in order, starting with the one that answered
//!    last (or the leader a node pointed to).
//! 2. An endpoint that cannot be connected to, or that answers gRPC
//!    `UNAVAILABLE` or a retryable [`ApiError`], is left for the next one;
//!    when the answer names the leader's address (`ErrorDetail.leader_addr`),
//!    the leader is tried next, even if it was not among the endpoints.
//! 3. When every endpoint failed in a round, it waits (50 ms, doubling up to
//!    1 s) and starts another round, until the time budget
//!    ([`ClientConfig::timeout`]) is spent: then [`ClientError::Unavailable`].
//! 4. A try that runs out of the budget ends the call:
//!    [`ClientError::Unavailable`]. (A node that gives up on a request
//!    early, with an untyped `CANCELLED` or `DEADLINE_EXCEEDED`, and a
//!    connection that breaks under a call, an untyped `UNKNOWN`, are treated
//!    as unavailable and the next endpoint is tried.)
//! 5. Any other error is the answer: [`ClientError::Api`], no retry.
//!
//! Each try sends the same message, so a write must carry its
//! [`pb::RequestId`] (from [`Client::request_id`]) for the retry to be safe:
//! the cluster answers a repeated id with the first answer.
//!
//! A server stream (`watch`) is opened with [`Client::call`] too; when it
//! breaks later, outside any call, [`Client::skip_current`] moves the
//! client on to the next endpoint before the stream is opened again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_proto::pb::registry_client::RegistryClient;
use tonic::transport::{Channel, Endpoint, Uri};

mod calls;
pub mod errors;
mod watch;

pub use calls::Executed;

use std::net::SocketAddr;

use crate::config::Discovery;
use crate::discovery::Resolver;
pub use errors::{ApiError, CallError, ClientError};
pub use watch::WatchOptions;

/// How a [`Client`] reaches a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The nodes to try, in order: `HOST:PORT` or `http://HOST:PORT`.
    /// At least one. No default here; the command line's is `127.0.0.1:7400`.
    pub endpoints: Vec<String>,
    /// The budget of one call, every retry included; it is also sent as the
    /// gRPC deadline of each try. Default 5 s.
    pub timeout: Duration,
    /// The longest wait for one TCP connection, never more than what is left
    /// of `timeout`. Default 1 s.
    pub connect_timeout: Duration,
    /// The pause after a round in which no endpoint answered; it doubles
    /// after each such round, up to `max_retry_backoff`. Default 50 ms.
    pub retry_backoff: Duration,
    /// The longest pause between two rounds. Default 1 s.
    pub max_retry_backoff: Duration,
}

impl ClientConfig {
    /// The defaults for these endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(50),
            max_retry_backoff: Duration::from_secs(1),
        }
    }
}

/// Makes the [`pb::RequestId`]s of one writer: a client id chosen once
/// (`cli-` and a random UUID) and a serial that grows with every request.
#[derive(Debug)]
pub struct RequestIds {
    client_id: String,
    next_serial: AtomicU64,
}

impl RequestIds {
    /// A new writer with a random client id (`cli-` and a UUID); serials start at 1.
    pub fn new() -> Self {
        Self::with_prefix("cli")
    }

    /// A new writer with a random client id, `PREFIX-` and a UUID; serials start at 1.
    pub fn with_prefix(prefix: &str) -> Self {
        Self::with_client_id(format!("{prefix}-{}", uuid::Uuid::new_v4()))
    }

    /// A writer with a given client id (1 to 128 characters), e.g. one a
    /// long-running process keeps across restarts; serials start at 1.
    pub fn with_client_id(client_id: impl Into<String>) -> Self {
        RequestIds {
            client_id: client_id.into(),
            next_serial: AtomicU64::new(1),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The id of a new logical write. Retries of that write reuse it.
    pub fn next_id(&self) -> pb::RequestId {
        pb::RequestId {
            client_id: self.client_id.clone(),
            serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// One node the client may talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// As shown to people: `host:port`.
    addr: String,
    /// As dialed: `http://host:port`.
    uri: Uri,
}

/// The client's memory between calls.
#[derive(Debug)]
struct State {
    /// The configured endpoints, then leaders learned from hints.
    targets: Vec<Target>,
    /// The index of the target to try first.
    preferred: Option<usize>,
    /// Connected channels by target index.
    channels: HashMap<usize, Channel>,
}

/// The last failure of a call, for the error when it gives up.
struct Failure {
    addr: String,
    reason: String,
    code: Option<pb::ErrorCode>,
}

/// A connection to a cluster that survives node failures; see the module
/// documentation. Cheap to share by reference; calls may run concurrently.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    state: Mutex<State>,
    request_ids: RequestIds,
    /// Where to find more nodes after a round in which none answered.
    discovery: Option<Resolver>,
}

impl Client {
    /// Checks the endpoints; connects nothing yet.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_request_ids(config, RequestIds::new())
    }

    /// As [`Client::new`], with the given request id maker.
    pub fn with_request_ids(
        config: ClientConfig,
        request_ids: RequestIds,
    ) -> Result<Self, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut targets: Vec<Target> = Vec::new();
        for endpoint in &config.endpoints {
            let target = parse_endpoint(endpoint)?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        Ok(Client {
            config,
            state: Mutex::new(State {
                targets,
                preferred: None,
                channels: HashMap::new(),
            }),
            request_ids,
            discovery: None,
        })
    }

    /// A client of the nodes `discovery` names (asking `dns_server`, or the system's
    /// resolver, for the DNS kinds): resolved now, and again after every round of a call
    /// in which no node answered, so a cluster whose nodes moved is found again. The
    /// endpoints of `config` are replaced by the ones found.
    pub async fn discover(
        discovery: Discovery,
        dns_server: Option<SocketAddr>,
        mut config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let resolver = Resolver::new(discovery, dns_server).map_err(ClientError::Discovery)?;
        config.endpoints = resolver.resolve().await.map_err(ClientError::Discovery)?;
        let mut client = Self::new(config)?;
        client.discovery = Some(resolver);
        Ok(client)
    }

    /// Adds the nodes discovery names now to the targets (none are dropped: a node that
    /// left is merely never answered).
    async fn rediscover(&self) {
        let Some(resolver) = &self.discovery else {
            return;
        };
        match resolver.resolve().await {
            Ok(nodes) => {
                let found: Vec<Target> = nodes
                    .iter()
                    .filter_map(|node| parse_endpoint(node).ok())
                    .collect();
                let mut state = self.lock();
                for target in found {
                    if !state.targets.contains(&target) {
                        state.targets.push(target);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "discovery failed; keeping the nodes known"),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The id of a new logical write; see [`RequestIds::next_id`].
    pub fn request_id(&self) -> pb::RequestId {
        self.request_ids.next_id()
    }

    /// This client's id, as sent in every [`pb::RequestId`].
    pub fn client_id(&self) -> &str {
        self.request_ids.client_id()
    }

    /// The endpoint the next call tries first (`host:port`): the one that
    /// answered last, or the leader a node pointed to; else the first one.
    pub fn current_endpoint(&self) -> String {
        let state = self.lock();
        state.targets[state.preferred.unwrap_or(0)].addr.clone()
    }

    /// Runs one unary RPC with failover; see the module documentation.
    /// `rpc` gets a connected channel and the request (a clone of `message`
    /// with the remaining budget as its gRPC timeout) and is called once per
    /// try. Example:
    ///
    /// ```no_run
    /// # async fn f(client: &orrery_sdk::client::Client) -> Result<(), orrery_sdk::client::ClientError> {
    /// use orrery_proto::pb::{registry_client::RegistryClient, ListModulesRequest};
    /// let modules = client
    ///     .call(ListModulesRequest::default(), |channel, request| async move {
    ///         RegistryClient::new(channel).list_modules(request).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn call<M, T, F, Fut>(&self, message: M, mut rpc: F) -> Result<T, ClientError>
    where
        M: Clone,
        F: FnMut(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = self.config.retry_backoff;
        let mut attempts = 0u32;
        let mut last: Option<Failure> = None;
        loop {
            let mut queue = self.round_order();
            let mut tried = HashSet::new();
            while let Some(index) = queue.pop_front() {
                if !tried.insert(index) {
                    continue;
                }
                let Some(remaining) = time_left(deadline) else {
                    return Err(self.unavailable(attempts, last));
                };
                attempts += 1;
                let addr = self.lock().targets[index].addr.clone();
                let channel = match self.channel(index, remaining).await {
                    Ok(channel) => channel,
                    Err(reason) => {
                        last = Some(Failure {
                            addr,
                            reason,
                            code: None,
                        });
                        continue;
                    }
                };
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(remaining);
                let answer = match tokio::time::timeout(remaining, rpc(channel, request)).await {
                    Ok(answer) => answer,
                    Err(_elapsed) => {
                        last = Some(Failure {
                            addr,
                            reason: "no answer in time".to_string(),
                            code: None,
                        });
                        return Err(self.unavailable(attempts, last));
                    }
                };
                let status = match answer {
                    Ok(response) => {
                        self.lock().preferred = Some(index);
                        return Ok(response.into_inner());
                    }
                    Err(status) => status,
                };
                let error = ApiError::from_status(&status);
                // Made by gRPC, not by an Orrery node: the transport, or a
                // tonic server giving up at the deadline we sent (it answers
                // CANCELLED).
                let untyped = error.code == pb::ErrorCode::Unspecified;
                // An untyped UNKNOWN is the transport failing (a connection
                // that broke under a cached channel): another node may answer.
                let gave_up = untyped
                    && matches!(
                        error.grpc_code,
                        tonic::Code::DeadlineExceeded
                            | tonic::Code::Cancelled
                            | tonic::Code::Unknown
                    );
                if !gave_up && !error.is_retryable_elsewhere() {
                    self.lock().preferred = Some(index);
                    return Err(ClientError::Api(error));
                }
                if untyped {
                    // The connection may be broken: dial again next time.
                    self.lock().channels.remove(&index);
                }
                if let Some(leader) = error.leader_addr.as_deref().and_then(|a| self.learn(a)) {
                    if leader != index && !tried.contains(&leader) {
                        queue.retain(|&i| i != leader);
                        queue.push_front(leader);
                    }
                }
                let reason = if gave_up && error.grpc_code != tonic::Code::Unknown {
                    format!("no answer in time ({})", error.message)
                } else {
                    error.to_string()
                };
                last = Some(Failure {
                    addr,
                    reason,
                    code: Some(error.code),
                });
            }
            self.rediscover().await;
            match time_left(deadline) {
                Some(left) if left > backoff => tokio::time::sleep(backoff).await,
                _ => return Err(self.unavailable(attempts, last)),
            }
            backoff = (backoff * 2).min(self.config.max_retry_backoff);
        }
    }

    /// [`Client::call`] on the `ClusterAdmin` service. Example:
    ///
    /// ```no_run
    /// # async fn f(client: &orrery_sdk::client::Client) -> Result<(), orrery_sdk::client::ClientError> {
    /// use orrery_proto::pb::StatusRequest;
    /// let status = client
    ///     .admin(StatusRequest {}, |mut admin, request| async move {
    ///         admin.status(request).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn admin<M, T, F, Fut>(&self, message: M, mut rpc: F) -> Result<T, ClientError>
    where
        M: Clone,
        F: FnMut(ClusterAdminClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(message, |channel, request| {
            rpc(ClusterAdminClient::new(channel), request)
        })
        .await
    }

    /// [`Client::call`] on the `Registry` service. Example:
    ///
    /// ```no_run
    /// # async fn f(client: &orrery_sdk::client::Client) -> Result<(), orrery_sdk::client::ClientError> {
    /// use orrery_proto::pb::ListModulesRequest;
    /// let modules = client
    ///     .registry(ListModulesRequest::default(), |mut registry, request| async move {
    ///         registry.list_modules(request).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn registry<M, T, F, Fut>(&self, message: M, mut rpc: F) -> Result<T, ClientError>
    where
        M: Clone,
        F: FnMut(RegistryClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(message, |channel, request| {
            rpc(RegistryClient::new(channel), request)
        })
        .await
    }

    /// Gives up on the endpoint that answered last, after it failed outside
    /// a call (a stream it served broke): its connection is dropped and the
    /// next call starts with the endpoint after it.
    pub fn skip_current(&self) {
        let mut state = self.lock();
        let current = state.preferred.unwrap_or(0);
        state.channels.remove(&current);
        state.preferred = Some((current + 1) % state.targets.len());
    }

    /// A connected channel to the first endpoint that accepts a connection,
    /// in the order [`Client::call`] uses, with its `host:port`. For
    /// streaming RPCs (provider registration) that outlive one time budget
    /// and handle their own reconnection. Gives up after the time budget.
    pub async fn connect_any(&self) -> Result<(String, Channel), ClientError> {
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = self.config.retry_backoff;
        let mut attempts = 0u32;
        let mut last = None;
        loop {
            for index in self.round_order() {
                let Some(remaining) = time_left(deadline) else {
                    return Err(self.unavailable(attempts, last));
                };
                attempts += 1;
                let addr = self.lock().targets[index].addr.clone();
                match self.channel(index, remaining).await {
                    Ok(channel) => return Ok((addr, channel)),
                    Err(reason) => {
                        last = Some(Failure {
                            addr,
                            reason,
                            code: None,
                        })
                    }
                }
            }
            match time_left(deadline) {
                Some(left) if left > backoff => tokio::time::sleep(backoff).await,
                _ => return Err(self.unavailable(attempts, last)),
            }
            backoff = (backoff * 2).min(self.config.max_retry_backoff);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // update is a single assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The targets in the order of one round: the preferred one first, then
    /// the others in configured order.
    fn round_order(&self) -> VecDeque<usize> {
        let state = self.lock();
        let first = state.preferred.unwrap_or(0);
        std::iter::once(first)
            .chain((0..state.targets.len()).filter(|&i| i != first))
            .collect()
    }

    /// Records a leader address from a hint, makes it the preferred target
    /// and returns its index; `None` if the address is not `host:port`.
    fn learn(&self, addr: &str) -> Option<usize> {
        let target = parse_endpoint(addr).ok()?;
        let mut state = self.lock();
        let index = match state.targets.iter().position(|t| *t == target) {
            Some(index) => index,
            None => {
                state.targets.push(target);
                state.targets.len() - 1
            }
        };
        state.preferred = Some(index);
        Some(index)
    }

    /// The cached channel of a target, or a new connection to it.
    async fn channel(&self, index: usize, remaining: Duration) -> Result<Channel, String> {
        let uri = {
            let state = self.lock();
            if let Some(channel) = state.channels.get(&index) {
                return Ok(channel.clone());
            }
            state.targets[index].uri.clone()
        };
        let channel = dial(uri, self.config.connect_timeout.min(remaining)).await?;
        self.lock().channels.insert(index, channel.clone());
        Ok(channel)
    }

    fn unavailable(&self, attempts: u32, last: Option<Failure>) -> ClientError {
        let (last, last_code) = match last {
            Some(f) => (format!("{}: {}", f.addr, f.reason), f.code),
            None => ("no endpoint was tried".to_string(), None),
        };
        ClientError::Unavailable {
            budget: self.config.timeout,
            attempts,
            last,
            last_code,
        }
    }
}

/// A channel connected to `uri` within `connect_timeout`, or why not.
pub(crate) async fn dial(uri: Uri, connect_timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from(uri)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    match tokio::time::timeout(connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_elapsed) => Err("connection timed out".to_string()),
    }
}

/// The URI to dial for a node's `HOST:PORT` (or `http://HOST:PORT`).
pub(crate) fn node_uri(endpoint: &str) -> Result<Uri, ClientError> {
    parse_endpoint(endpoint).map(|target| target.uri)
}

/// What is left until `deadline`, `None` once it has passed.
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// An error and its causes on one line, repeated texts dropped.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Reads `HOST:PORT` or `http://HOST:PORT`.
fn parse_endpoint(endpoint: &str) -> Result<Target, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = endpoint.trim();
    let addr = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(invalid(&format!(
                "scheme {scheme:?} is not supported, expected HOST:PORT"
            )))
        }
        None => trimmed,
    };
    let addr = addr.strip_suffix('/').unwrap_or(addr);
    if addr.is_empty() {
        return Err(invalid("expected HOST:PORT"));
    }
    let uri: Uri = format!("http://{addr}")
        .parse()
        .map_err(|_| invalid("expected HOST:PORT"))?;
    if uri.port().is_none() || uri.host().is_none_or(str::is_empty) {
        return Err(invalid("expected HOST:PORT"));
    }
    if uri.path() != "/" || uri.query().is_some() {
        return Err(invalid("expected HOST:PORT, without a path"));
    }
    Ok(Target {
        addr: addr.to_string(),
        uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints are `host:port`, with an optional `http://`.
    /// Steps: parse good and bad endpoints.
    #[test]
    fn parses_endpoints() {
        for (given, addr) in [
            ("127.0.0.1:7400", "127.0.0.1:7400"),
            (" node-1.example:7400 ", "node-1.example:7400"),
            ("http://[::1]:7400/", "[::1]:7400"),
        ] {
            assert_eq!(parse_endpoint(given).unwrap().addr, addr);
        }
        for bad in ["", "127.0.0.1", "https://a:1", "a:1/x", "a:b", ":7400"] {
            assert!(
                matches!(
                    parse_endpoint(bad),
                    Err(ClientError::InvalidEndpoint { .. })
                ),
                "{bad:?}"
            );
        }
    }

    /// Request ids keep their client id and count up from 1.
    #[test]
    fn request_ids_count_up() {
        let ids = RequestIds::with_client_id("c1");
        assert_eq!(ids.next_id().serial, 1);
        let second = ids.next_id();
        assert_eq!(second.client_id, "c1");
        assert_eq!(second.serial, 2);
        let random = RequestIds::new();
        assert!(random.client_id().starts_with("cli-"));
        assert_eq!(random.client_id().len(), 40);
        assert_ne!(random.client_id(), RequestIds::new().client_id());
    }

    /// Calls can run on a multi-threaded runtime: the client is shared by
    /// reference and its futures are `Send`.
    /// Steps: build a call future and a connect future, hand them to a
    /// function that takes only `Send` values, drop them unpolled.
    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        fn sync<T: Sync>(_: &T) {}
        let client = Client::new(ClientConfig::new(vec!["a:1".into()])).unwrap();
        sync(&client);
        send(
            client.admin(pb::StatusRequest {}, |mut admin, request| async move {
                admin.status(request).await
            }),
        );
        send(client.connect_any());
    }

    /// A client needs at least one valid endpoint and dedupes repeats.
    #[test]
    fn checks_endpoints_up_front() {
        assert!(matches!(
            Client::new(ClientConfig::new(vec![])),
            Err(ClientError::NoEndpoints)
        ));
        assert!(matches!(
            Client::new(ClientConfig::new(vec!["a:1".into(), "nope".into()])),
            Err(ClientError::InvalidEndpoint { .. })
        ));
        let client =
            Client::new(ClientConfig::new(vec!["a:1".into(), "http://a:1".into()])).unwrap();
        assert_eq!(client.lock().targets.len(), 1);
        assert_eq!(client.current_endpoint(), "a:1");
    }

    /// Skipping the current endpoint moves to the next one, wrapping.
    #[test]
    fn skips_to_the_next_endpoint() {
        let client = Client::new(ClientConfig::new(vec!["a:1".into(), "b:2".into()])).unwrap();
        client.skip_current();
        assert_eq!(client.current_endpoint(), "b:2");
        client.skip_current();
        assert_eq!(client.current_endpoint(), "a:1");
    }
}

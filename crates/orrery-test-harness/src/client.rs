//! [`ClusterClient`]: a `ClusterAdmin` client over several nodes that follows the leader
//! hint of `ErrorDetail` and moves to the next node on UNAVAILABLE, as an operator tool
//! would.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_server::error_detail;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic::Code;
use tonic::Status;

/// How long a call keeps retrying retryable failures by default.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(15);
/// Pause between two attempts once every endpoint was tried.
const BACKOFF: Duration = Duration::from_millis(50);

/// A `ClusterAdmin` client over a set of endpoints. Cheap to clone; clones share the
/// preferred endpoint.
#[derive(Clone)]
pub struct ClusterClient {
    endpoints: Arc<Mutex<Vec<String>>>,
    current: Arc<AtomicUsize>,
    follow: bool,
    patience: Duration,
    call_timeout: Duration,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("endpoints", &*self.endpoints.lock().expect("endpoints"))
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// A client over `endpoints` that follows leader hints and fails over.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints: Arc::new(Mutex::new(endpoints)),
            current: Arc::new(AtomicUsize::new(0)),
            follow: true,
            patience: DEFAULT_PATIENCE,
            call_timeout: Duration::from_secs(12),
        }
    }

    /// A client bound to one node: it retries retryable failures on that node (for the
    /// default patience) but never moves to another node or follows a hint.
    pub fn pinned(endpoint: String) -> Self {
        Self {
            follow: false,
            ..Self::new(vec![endpoint])
        }
    }

    /// The same client with another retry budget (zero: one attempt).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The same client with another per-attempt timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    fn channel(endpoint: &str) -> Channel {
        Endpoint::from_shared(format!("http://{endpoint}"))
            .expect("valid endpoint")
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy()
    }

    /// Runs `f` against the preferred endpoint, retrying retryable failures on the hinted
    /// leader or the next endpoint until the patience runs out.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(ClusterAdminClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.patience;
        let mut attempts_since_pause = 0;
        loop {
            let endpoint = {
                let endpoints = self.endpoints.lock().expect("endpoints");
                endpoints[self.current.load(Ordering::Relaxed) % endpoints.len()].clone()
            };
            let client = ClusterAdminClient::new(Self::channel(&endpoint));
            let result = match tokio::time::timeout(self.call_timeout, f(client)).await {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded("call timed out in the client")),
            };
            let status = match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            let detail = error_detail(&status);
            let retryable = detail.as_ref().map(|d| d.retryable).unwrap_or(matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
            ));
            if !retryable || Instant::now() >= deadline {
                return Err(status);
            }
            if !self.follow {
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            let hint = detail
                .map(|d| d.leader_addr)
                .filter(|a| !a.is_empty() && *a != endpoint);
            let pause = {
                let mut endpoints = self.endpoints.lock().expect("endpoints");
                match hint {
                    Some(leader) => {
                        let at = match endpoints.iter().position(|e| *e == leader) {
                            Some(at) => at,
                            None => {
                                endpoints.push(leader);
                                endpoints.len() - 1
                            }
                        };
                        self.current.store(at, Ordering::Relaxed);
                    }
                    None => {
                        self.current.fetch_add(1, Ordering::Relaxed);
                    }
                }
                attempts_since_pause += 1;
                attempts_since_pause >= endpoints.len()
            };
            if pause {
                attempts_since_pause = 0;
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }

    /// Reserves `namespace` for `group`.
    pub async fn reserve(
        &self,
        namespace: &str,
        group: &str,
        request_id: Option<pb::RequestId>,
    ) -> Result<pb::NamespaceResponse, Status> {
        self.call(|mut c| {
            let request = pb::ReserveNamespaceRequest {
                request_id: request_id.clone(),
                namespace: namespace.to_string(),
                group_id: group.to_string(),
            };
            async move { c.reserve_namespace(request).await }
        })
        .await
    }

    /// Releases `namespace`.
    pub async fn release(
        &self,
        namespace: &str,
        request_id: Option<pb::RequestId>,
    ) -> Result<pb::NamespaceResponse, Status> {
        self.call(|mut c| {
            let request = pb::ReleaseNamespaceRequest {
                request_id: request_id.clone(),
                namespace: namespace.to_string(),
            };
            async move { c.release_namespace(request).await }
        })
        .await
    }

    /// Reads one namespace.
    pub async fn get(
        &self,
        namespace: &str,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::NamespaceResponse, Status> {
        self.call(|mut c| {
            let request = pb::GetNamespaceRequest {
                namespace: namespace.to_string(),
                consistency: consistency as i32,
            };
            async move { c.get_namespace(request).await }
        })
        .await
    }

    /// Lists namespaces under `prefix`.
    pub async fn list(
        &self,
        prefix: &str,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::ListNamespacesResponse, Status> {
        self.call(|mut c| {
            let request = pb::ListNamespacesRequest {
                prefix: prefix.to_string(),
                consistency: consistency as i32,
            };
            async move { c.list_namespaces(request).await }
        })
        .await
    }

    /// The cluster's status as the answering node sees it.
    pub async fn status(&self) -> Result<pb::StatusResponse, Status> {
        self.call(|mut c| async move { c.status(pb::StatusRequest {}).await })
            .await
    }

    /// Removes node `node_id` from the cluster.
    pub async fn remove_node(&self, node_id: u64) -> Result<pb::MembershipResponse, Status> {
        self.call(|mut c| async move { c.remove_node(pb::RemoveNodeRequest { node_id }).await })
            .await
    }
}

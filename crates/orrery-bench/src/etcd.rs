//! The generated client of etcd's `etcdserverpb.KV` service (`Put` and
//! `Range` only; see `proto/etcd/kv.proto`).

/// Messages and the `KV` client of package `etcdserverpb`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

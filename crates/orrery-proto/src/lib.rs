//! Orrery's v1 gRPC protocol, generated from `proto/orrery/v1/*.proto`.
//!
//! - [`pb`]: every message, plus a client and a server module per service:
//!   `ProviderService` and `ModuleExecutor` (provider protocol), `Registry`
//!   (callers), `ClusterAdmin` (operators), `RaftService` (node to node).
//!   The type and value messages (`TypeSchema`, `Value`, ...) are
//!   `orrery_types::pb`'s, re-exported here, so one `Value` type serves
//!   every service.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//! - [`error_detail`]: the typed error of a failed RPC, as every client reads it.
//!
//! Conversions between these messages and `orrery-types` live in
//! `orrery_types::{schema, wire}`; conversions for the service messages are
//! added next to the services that need them.

/// The generated messages and services of package `orrery.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/orrery.v1.rs"));
    pub use orrery_types::pb::*;
}

/// The typed error a failed RPC carries in `grpc-status-details-bin` (an encoded
/// [`pb::ErrorDetail`], see `common.proto`), or `None` when it carries none or
/// something else.
pub fn error_detail(status: &tonic::Status) -> Option<pb::ErrorDetail> {
    use prost::Message;
    match status.details() {
        [] => None,
        bytes => pb::ErrorDetail::decode(bytes).ok(),
    }
}

/// An error code's name as errors and logs print it: without the `ERROR_CODE_` prefix
/// (`NAMESPACE_OWNED`).
pub fn error_code_name(code: pb::ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}

/// The protobuf file descriptor set of every v1 file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/orrery_v1_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::pb;
    use prost::Message;

    /// Error code names lose their prefix and nothing else.
    /// Steps: name a two-word code and the unspecified one.
    #[test]
    fn error_code_names_drop_the_prefix() {
        assert_eq!(
            super::error_code_name(pb::ErrorCode::NamespaceOwned),
            "NAMESPACE_OWNED"
        );
        assert_eq!(
            super::error_code_name(pb::ErrorCode::Unspecified),
            "UNSPECIFIED"
        );
    }

    /// The services and the shared value type fit together: an execute
    /// request carrying a value round-trips through bytes, and the
    /// descriptor set names every service.
    /// Steps: build a request with a `Value`, encode and decode it; decode the
    /// descriptor set and list its services.
    #[test]
    fn services_share_the_value_type() {
        let request = pb::ExecuteModuleRequest {
            qualified_name: "acme.upper".into(),
            input: Some(orrery_types::wire::to_pb(&orrery_types::CValue::String(
                "hi".into(),
            ))),
            ..Default::default()
        };
        let decoded = pb::ExecuteModuleRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, request);

        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let mut files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        files.sort();
        assert_eq!(
            files,
            [
                "orrery/v1/cluster.proto",
                "orrery/v1/common.proto",
                "orrery/v1/provider.proto",
                "orrery/v1/raft.proto",
                "orrery/v1/registry.proto",
                "orrery/v1/types.proto"
            ]
        );
        let mut services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(|s| s.name().to_string()))
            .collect();
        services.sort();
        assert_eq!(
            services,
            [
                "ClusterAdmin",
                "ModuleExecutor",
                "ProviderService",
                "RaftService",
                "Registry"
            ]
        );
    }
}

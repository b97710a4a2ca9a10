//! Every size limit of the protocol, in one place.
//!
//! These are part of the v1 protocol (the `.proto` comments quote them), not
//! tuning knobs: a provider built against them must be accepted by every
//! node. Message sizes are the server's to bound (its gRPC limits).

/// Longest namespace, in characters.
pub const MAX_NAMESPACE_LEN: usize = 128;
/// Longest segment of a namespace, in characters.
pub const MAX_SEGMENT_LEN: usize = 63;
/// Longest module name (and product field or union variant name).
pub const MAX_MODULE_NAME_LEN: usize = 64;
/// Longest provider group id.
pub const MAX_GROUP_ID_LEN: usize = 128;
/// Longest executor endpoint (`host:port`).
pub const MAX_ENDPOINT_LEN: usize = 261;
/// Longest host name in an endpoint (DNS limit).
pub const MAX_HOST_LEN: usize = 253;
/// Longest module version.
pub const MAX_VERSION_LEN: usize = 64;
/// Longest module description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// How deeply a type schema may nest (a primitive is depth 1).
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// Most fields of a product or variants of a union.
pub const MAX_SCHEMA_MEMBERS: usize = 1024;
/// Most modules in one registration.
pub const MAX_MODULES_PER_REGISTRATION: usize = 256;
/// Most entries in a tags or metadata map.
pub const MAX_LABELS: usize = 32;
/// Longest key or value in a tags or metadata map.
pub const MAX_LABEL_LEN: usize = 256;

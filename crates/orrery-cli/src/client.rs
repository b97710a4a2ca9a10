//! The connection to a cluster: the SDK's caller client
//! ([`orrery_sdk::client`]), shared with pipeline runtimes: endpoint
//! failover, leader hints, time budgets and request ids, for any service an
//! Orrery node serves.

pub use orrery_sdk::client::{Client, ClientConfig, RequestIds};

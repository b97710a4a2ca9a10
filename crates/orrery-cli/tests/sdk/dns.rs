//! A real DNS server for the discovery tests: hickory-server in this process,
//! on one loopback port over UDP and TCP, authoritative for one zone whose A
//! and SRV records a test replaces while providers run.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;

/// Records live this long in caches; the SDK's resolver keeps none anyway.
const TTL: u32 = 1;

/// A running DNS server; stopped when dropped.
pub struct DnsServer {
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    serial: AtomicU32,
    _server: Server<Catalog>,
}

impl DnsServer {
    /// Serves the zone `origin` (e.g. `orrery.test.`), empty but for its SOA,
    /// on 127.0.0.1 at a free port.
    pub async fn start(origin: &str) -> DnsServer {
        let origin = Name::from_ascii(origin).unwrap();
        let zone = Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(
            Name::from_ascii("ns")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            Name::from_ascii("admin")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            1,
            60,
            60,
            60,
            TTL,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1)
                .await
        );
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        // UDP and TCP on the same port: take a free UDP port, then its TCP twin.
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        DnsServer {
            addr,
            zone,
            serial: AtomicU32::new(1),
            _server: server,
        }
    }

    /// Replaces every A record of `name` with one per address in `ips`.
    pub async fn set_a(&self, name: &str, ips: &[Ipv4Addr]) {
        let records = ips.iter().map(|ip| RData::A(A(*ip))).collect::<Vec<_>>();
        self.replace(name, RecordType::A, records).await;
    }

    /// Replaces every SRV record of `name` with `(priority, weight, port,
    /// target)` each.
    pub async fn set_srv(&self, name: &str, targets: &[(u16, u16, u16, &str)]) {
        let records = targets
            .iter()
            .map(|(priority, weight, port, target)| {
                RData::SRV(SRV::new(
                    *priority,
                    *weight,
                    *port,
                    Name::from_ascii(target).unwrap(),
                ))
            })
            .collect();
        self.replace(name, RecordType::SRV, records).await;
    }

    async fn replace(&self, name: &str, kind: RecordType, data: Vec<RData>) {
        let name = Name::from_ascii(name).unwrap();
        let serial = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&name), kind));
        for data in data {
            assert!(
                self.zone
                    .upsert(Record::from_rdata(name.clone(), TTL, data), serial)
                    .await
            );
        }
    }
}

//! The nemesis: a seeded schedule of faults (partitions, packet loss, kills,
//! pauses, clock jumps and rate changes, membership changes, power losses),
//! each applied for a few seconds and then healed, recorded with the
//! runner's clock in `faults.jsonl`.
//!
//! A power loss SIGKILLs the nodes it hits and drops everything they wrote
//! but did not sync (see [`crate::powerfs`]), then restarts them: at once
//! (inside the election timeout, so a leader comes back before anyone else
//! campaigns) or after the fault's hold (after an election).

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::{sleep_until, Instant};

use crate::cluster::Cluster;
use crate::namelist::parse_list;
use crate::net;
use crate::powerfs::PowerLossReport;
use crate::runclock::RunClock;

/// A family of faults, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisKind {
    /// Network partitions.
    Partition,
    /// Random packet loss between nodes.
    Loss,
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Clock jumps and rate changes.
    Clock,
    /// A voter removed, then a new node added.
    Membership,
    /// Power loss of the leader.
    PowerLeader,
    /// Power loss of a majority of the nodes.
    PowerMajority,
    /// Power loss of every node.
    PowerAll,
    /// Power loss of every node shortly after the cluster's first start,
    /// then power losses of every node during the run.
    PowerFirstStart,
}

impl NemesisKind {
    /// Every family, in the order `all` means.
    pub const ALL: [NemesisKind; 10] = [
        NemesisKind::Partition,
        NemesisKind::Loss,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Clock,
        NemesisKind::Membership,
        NemesisKind::PowerLeader,
        NemesisKind::PowerMajority,
        NemesisKind::PowerAll,
        NemesisKind::PowerFirstStart,
    ];

    /// The power-loss families, which `power` names together.
    pub const POWER: [NemesisKind; 4] = [
        NemesisKind::PowerLeader,
        NemesisKind::PowerMajority,
        NemesisKind::PowerAll,
        NemesisKind::PowerFirstStart,
    ];
}

impl FromStr for NemesisKind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "partition" => NemesisKind::Partition,
            "loss" => NemesisKind::Loss,
            "kill" => NemesisKind::Kill,
            "pause" => NemesisKind::Pause,
            "clock" => NemesisKind::Clock,
            "membership" => NemesisKind::Membership,
            "power-leader" => NemesisKind::PowerLeader,
            "power-majority" => NemesisKind::PowerMajority,
            "power-all" => NemesisKind::PowerAll,
            "power-first-start" => NemesisKind::PowerFirstStart,
            other => bail!(
                "unknown nemesis {other:?}: expected partition, loss, kill, pause, clock, \
                 membership, power-leader, power-majority, power-all, power-first-start, \
                 power, all or none"
            ),
        })
    }
}

/// Parses `partition,kill`, `all`, or `none` (no faults: a baseline);
/// `power` stands for every power-loss family.
pub fn parse_kinds(list: &str) -> anyhow::Result<Vec<NemesisKind>> {
    if list.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut kinds: Vec<NemesisKind> = Vec::new();
    for name in list.split(',').map(str::trim) {
        let named = if name == "power" {
            NemesisKind::POWER.to_vec()
        } else {
            parse_list(name, &NemesisKind::ALL, "nemesis")?
        };
        for kind in named {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(kinds)
}

/// One fault, resolved to concrete nodes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    /// Packets from `sender` are dropped on arrival at `receiver`, for each
    /// `(receiver, sender)` pair.
    Partition {
        /// `isolate-one`, `isolate-leader`, `majority-minority`, `asymmetric`,
        /// and with five nodes `bridge` and `majorities-ring`.
        shape: &'static str,
        /// The cut links.
        cuts: Vec<(u64, u64)>,
    },
    /// Every node drops each packet from another node with this probability.
    Loss {
        /// The drop probability.
        probability: f64,
    },
    /// SIGKILL, restarted at heal.
    Kill {
        /// The killed nodes.
        nodes: Vec<u64>,
    },
    /// SIGSTOP, SIGCONT at heal.
    Pause {
        /// The paused nodes.
        nodes: Vec<u64>,
    },
    /// libfaketime specs written to the nodes' control files, reset at heal.
    Clock {
        /// `(node, spec)`.
        changes: Vec<(u64, String)>,
    },
    /// A voter removed (`RemoveNode`, then killed); at heal a new node with
    /// a fresh id joins (`--join`) and is promoted.
    Membership {
        /// The removed voter.
        removed: u64,
        /// The node added at heal.
        added: u64,
    },
    /// SIGKILL and loss of every unsynced write; restarted at once or at heal.
    PowerLoss {
        /// `leader`, `majority`, `all` or `first-start`.
        target: &'static str,
        /// The nodes that lost power.
        nodes: Vec<u64>,
        /// Restarted right after the loss rather than at heal.
        restart_at_once: bool,
    },
}

/// A line of `faults.jsonl`.
#[derive(Serialize)]
struct FaultEvent<'a> {
    /// Runner nanoseconds.
    at_ns: u64,
    /// `start` or `heal`.
    action: &'static str,
    #[serde(flatten)]
    fault: &'a Fault,
}

/// Timing of the schedule.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// How long a fault lasts, at least (default 3 s).
    pub hold_min: Duration,
    /// How long a fault lasts, at most (default 8 s).
    pub hold_max: Duration,
    /// Calm between faults, at least (default 2 s).
    pub calm_min: Duration,
    /// Calm between faults, at most (default 5 s).
    pub calm_max: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            hold_min: Duration::from_secs(3),
            hold_max: Duration::from_secs(8),
            calm_min: Duration::from_secs(2),
            calm_max: Duration::from_secs(5),
        }
    }
}

/// Chooses and injects faults.
pub struct Nemesis {
    rng: StdRng,
    kinds: Vec<NemesisKind>,
    pacing: Pacing,
    log: std::io::BufWriter<std::fs::File>,
    clock: RunClock,
    /// Faults injected so far.
    pub injected: Vec<Fault>,
    /// What the power losses so far dropped, summed.
    pub power_dropped: PowerLossTotals,
}

/// The sum of the power losses' reports: proof that they had something to
/// drop.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PowerLossTotals {
    /// Nodes that lost power (a fault hitting three nodes counts three).
    pub losses: u64,
    /// Files whose unsynced data was rolled back.
    pub files: u64,
    /// Unsynced bytes restored or cut.
    pub bytes: u64,
    /// Unsynced directory entries undone.
    pub entries: u64,
}

/// A line of `faults.jsonl` for one node's power loss.
#[derive(Serialize)]
struct PowerLossEvent {
    at_ns: u64,
    action: &'static str,
    node: u64,
    files: u64,
    bytes: u64,
    entries: u64,
}

impl Nemesis {
    /// A nemesis drawing from `kinds` with `seed`, logging to `log_path`.
    pub fn new(
        kinds: Vec<NemesisKind>,
        seed: u64,
        pacing: Pacing,
        log_path: &std::path::Path,
        clock: RunClock,
    ) -> anyhow::Result<Self> {
        Ok(Nemesis {
            rng: StdRng::seed_from_u64(seed),
            kinds,
            pacing,
            log: std::io::BufWriter::new(std::fs::File::create(log_path)?),
            clock,
            injected: Vec::new(),
            power_dropped: PowerLossTotals::default(),
        })
    }

    /// Injects faults one at a time until `until`, healing each before the
    /// next; everything is healed when it returns.
    pub async fn run(&mut self, cluster: &mut Cluster, until: Instant) -> anyhow::Result<()> {
        if self.kinds.is_empty() {
            sleep_until(until).await;
            return Ok(());
        }
        loop {
            let calm = self.between(self.pacing.calm_min, self.pacing.calm_max);
            let hold = self.between(self.pacing.hold_min, self.pacing.hold_max);
            let start = Instant::now() + calm;
            if start + hold > until {
                return Ok(());
            }
            sleep_until(start).await;
            let fault = self.choose(cluster).await;
            self.record("start", &fault)?;
            let applied = self.apply(cluster, &fault).await;
            sleep_until(start + hold).await;
            heal(cluster, &fault).await?;
            self.record("heal", &fault)?;
            applied?;
            self.injected.push(fault);
        }
    }

    /// Injects `fault`, recording each power loss with what it dropped.
    async fn apply(&mut self, cluster: &mut Cluster, fault: &Fault) -> anyhow::Result<()> {
        for (node, report) in apply(cluster, fault).await? {
            self.power_dropped.losses += 1;
            self.power_dropped.files += report.files;
            self.power_dropped.bytes += report.bytes;
            self.power_dropped.entries += report.entries;
            let event = PowerLossEvent {
                at_ns: self.clock.now_ns(),
                action: "power-lost",
                node,
                files: report.files,
                bytes: report.bytes,
                entries: report.entries,
            };
            serde_json::to_writer(&mut self.log, &event)?;
            self.log.write_all(b"\n")?;
        }
        self.log.flush()?;
        Ok(())
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let ms = self
            .rng
            .random_range(low.as_millis() as u64..=high.as_millis() as u64);
        Duration::from_millis(ms)
    }

    fn record(&mut self, action: &'static str, fault: &Fault) -> anyhow::Result<()> {
        let event = FaultEvent {
            at_ns: self.clock.now_ns(),
            action,
            fault,
        };
        serde_json::to_writer(&mut self.log, &event)?;
        self.log.write_all(b"\n")?;
        self.log.flush()?;
        Ok(())
    }

    /// Draws the next fault. Every random number is drawn before the cluster
    /// is asked who leads, so a seed gives the same sequence of draws.
    async fn choose(&mut self, cluster: &Cluster) -> Fault {
        let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
        let mut ids = cluster.ids.clone();
        ids.shuffle(&mut self.rng);
        let minority = (ids.len() - 1) / 2;
        let target_leader = self.rng.random_bool(0.5);
        // The bridge and majorities-ring shapes need five nodes.
        let shapes = if ids.len() >= 5 { 6 } else { 4 };
        let shape = self.rng.random_range(0..shapes);
        let all_kill = self.rng.random_bool(0.2);
        let count = self.rng.random_range(1..=minority.max(1));
        let probability = [0.05, 0.1, 0.2, 0.3][self.rng.random_range(0..4)];
        let clock_specs: Vec<String> = (0..ids.len()).map(|_| self.clock_spec()).collect();
        let clock_count = self.rng.random_range(1..=ids.len());
        let restart_at_once = self.rng.random_bool(0.5);

        // Put the leader first when the fault aims at it.
        if target_leader
            || (kind == NemesisKind::Partition && shape == 1)
            || kind == NemesisKind::PowerLeader
        {
            if let Some(leader) = cluster.leader().await {
                ids.retain(|id| *id != leader);
                ids.insert(0, leader);
            }
        }
        match kind {
            NemesisKind::Partition => {
                let (shape, cuts) = match shape {
                    0 => ("isolate-one", isolate(&ids[..1], &ids[1..])),
                    1 => ("isolate-leader", isolate(&ids[..1], &ids[1..])),
                    2 => (
                        "majority-minority",
                        isolate(&ids[..minority.max(1)], &ids[minority.max(1)..]),
                    ),
                    3 => ("asymmetric", vec![(ids[1], ids[0])]),
                    4 => ("bridge", bridge(&ids)),
                    _ => ("majorities-ring", majorities_ring(&ids)),
                };
                Fault::Partition { shape, cuts }
            }
            NemesisKind::Loss => Fault::Loss { probability },
            NemesisKind::Kill if all_kill => Fault::Kill { nodes: ids },
            NemesisKind::Kill => Fault::Kill {
                nodes: ids[..count].to_vec(),
            },
            NemesisKind::Pause => Fault::Pause {
                nodes: ids[..count].to_vec(),
            },
            NemesisKind::Membership => Fault::Membership {
                removed: ids[0],
                added: cluster.next_id(),
            },
            NemesisKind::Clock => Fault::Clock {
                changes: ids.into_iter().zip(clock_specs).take(clock_count).collect(),
            },
            NemesisKind::PowerLeader => Fault::PowerLoss {
                target: "leader",
                nodes: ids[..1].to_vec(),
                restart_at_once,
            },
            NemesisKind::PowerMajority => Fault::PowerLoss {
                target: "majority",
                nodes: ids[..ids.len() / 2 + 1].to_vec(),
                restart_at_once,
            },
            NemesisKind::PowerAll | NemesisKind::PowerFirstStart => Fault::PowerLoss {
                target: "all",
                nodes: ids,
                restart_at_once,
            },
        }
    }

    /// With [`NemesisKind::PowerFirstStart`]: cuts every node's power at a
    /// seeded moment 0-0.5 s after the cluster's first start (while the
    /// processes start, the stores are created and the cluster forms) and
    /// restarts them at once. Call it right after the nodes were started.
    pub async fn first_start(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        if !self.kinds.contains(&NemesisKind::PowerFirstStart) {
            return Ok(());
        }
        let delay = self.between(Duration::ZERO, Duration::from_millis(500));
        tokio::time::sleep(delay).await;
        let fault = Fault::PowerLoss {
            target: "first-start",
            nodes: cluster.ids.clone(),
            restart_at_once: true,
        };
        self.record("start", &fault)?;
        self.apply(cluster, &fault).await?;
        self.record("heal", &fault)?;
        self.injected.push(fault);
        Ok(())
    }

    /// A jump of milliseconds or of seconds to minutes, either way, or a
    /// rate change.
    fn clock_spec(&mut self) -> String {
        let sign = if self.rng.random_bool(0.5) { '+' } else { '-' };
        match self.rng.random_range(0..3u32) {
            0 => format!("{sign}{:.3}", self.rng.random_range(0.010..1.0)),
            1 => format!("{sign}{}", self.rng.random_range(1..=300u32)),
            _ => format!("+0 x{:.2}", self.rng.random_range(0.5..2.0)),
        }
    }
}

/// Both directions between every node of `side` and every node of `rest`.
fn isolate(side: &[u64], rest: &[u64]) -> Vec<(u64, u64)> {
    let mut cuts = Vec::new();
    for &a in side {
        for &b in rest {
            cuts.push((a, b));
            cuts.push((b, a));
        }
    }
    cuts
}

/// Two halves that cannot reach each other and one node (the last) that
/// reaches both.
fn bridge(ids: &[u64]) -> Vec<(u64, u64)> {
    let (halves, _bridge) = ids.split_at(ids.len() - 1);
    let (left, right) = halves.split_at(halves.len() / 2);
    isolate(left, right)
}

/// The nodes in a ring, each reaching only its two neighbours: with five,
/// every node sees a majority, and no two see the same one.
fn majorities_ring(ids: &[u64]) -> Vec<(u64, u64)> {
    let n = ids.len();
    let mut cuts = Vec::new();
    for (i, &a) in ids.iter().enumerate() {
        for (j, &b) in ids.iter().enumerate() {
            let distance = (i + n - j) % n;
            if a != b && distance != 1 && distance != n - 1 {
                cuts.push((a, b));
            }
        }
    }
    cuts
}

/// Injects a fault; answers what each power loss dropped, node by node.
pub async fn apply(
    cluster: &mut Cluster,
    fault: &Fault,
) -> anyhow::Result<Vec<(u64, PowerLossReport)>> {
    let mut power_losses = Vec::new();
    match fault {
        Fault::Partition { cuts, .. } => {
            for &(receiver, sender) in cuts {
                let from = net::node_ip(sender);
                net::iptables_in(receiver, &["-A", "INPUT", "-s", &from, "-j", "DROP"]).await?;
            }
        }
        Fault::Loss { probability } => {
            let p = probability.to_string();
            for &receiver in &cluster.ids {
                for &sender in cluster.ids.iter().filter(|s| **s != receiver) {
                    let from = net::node_ip(sender);
                    net::iptables_in(
                        receiver,
                        &[
                            "-A",
                            "INPUT",
                            "-s",
                            &from,
                            "-m",
                            "statistic",
                            "--mode",
                            "random",
                            "--probability",
                            &p,
                            "-j",
                            "DROP",
                        ],
                    )
                    .await?;
                }
            }
        }
        Fault::Kill { nodes } => {
            for &id in nodes {
                cluster.node(id).kill().await?;
            }
        }
        Fault::Pause { nodes } => {
            for &id in nodes {
                cluster.node(id).pause().await;
            }
        }
        Fault::Clock { changes } => {
            for (id, spec) in changes {
                cluster.node(*id).set_clock(spec)?;
            }
        }
        Fault::Membership { removed, .. } => cluster.remove_node(*removed).await?,
        Fault::PowerLoss {
            nodes,
            restart_at_once,
            ..
        } => {
            // Every node goes down before any comes back, as when a rack
            // loses power.
            for &id in nodes {
                power_losses.push((id, cluster.node(id).lose_power().await?));
            }
            if *restart_at_once {
                for &id in nodes {
                    cluster.node(id).start()?;
                }
            }
        }
    }
    Ok(power_losses)
}

/// Undoes a fault.
pub async fn heal(cluster: &mut Cluster, fault: &Fault) -> anyhow::Result<()> {
    match fault {
        Fault::Partition { .. } | Fault::Loss { .. } => {
            for id in cluster.ids.clone() {
                net::iptables_in(id, &["-F", "INPUT"]).await?;
            }
        }
        Fault::Kill { nodes } => {
            for &id in nodes {
                cluster.node(id).start()?;
            }
        }
        Fault::Pause { nodes } => {
            for &id in nodes {
                cluster.node(id).resume().await;
            }
        }
        Fault::Clock { changes } => {
            for (id, _) in changes {
                cluster.node(*id).set_clock("+0 x1")?;
            }
        }
        Fault::Membership { .. } => {
            if cluster.ids.len() < cluster.size {
                cluster.add_node().await?;
            }
        }
        Fault::PowerLoss {
            nodes,
            restart_at_once,
            ..
        } => {
            if !restart_at_once {
                for &id in nodes {
                    cluster.node(id).start()?;
                }
            }
        }
    }
    Ok(())
}

/// Heals everything whatever state the nodes are in: no rules, no pauses,
/// every member running, no clock offset, as many members as at the start.
pub async fn heal_everything(cluster: &mut Cluster) -> anyhow::Result<()> {
    for id in cluster.ids.clone() {
        net::iptables_in(id, &["-F", "INPUT"]).await?;
        let node = cluster.node(id);
        if node.is_paused() {
            node.resume().await;
        }
        node.set_clock("+0 x1")?;
    }
    cluster.start_all()?;
    while cluster.ids.len() < cluster.size {
        cluster.add_node().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_cuts_the_halves_but_not_the_bridge_node() {
        let cuts = bridge(&[1, 2, 3, 4, 5]);
        assert!(cuts.contains(&(1, 3)) && cuts.contains(&(4, 2)));
        assert!(!cuts.iter().any(|&(a, b)| a == 5 || b == 5));
        assert!(!cuts.contains(&(1, 2)) && !cuts.contains(&(3, 4)));
    }

    #[test]
    fn in_a_majorities_ring_every_node_reaches_exactly_its_two_neighbours() {
        let ids = [1, 2, 3, 4, 5];
        let cuts = majorities_ring(&ids);
        for &a in &ids {
            let reachable = ids
                .iter()
                .filter(|&&b| b != a && !cuts.contains(&(a, b)))
                .count();
            assert_eq!(reachable, 2, "node {a}");
        }
        assert!(!cuts.contains(&(1, 2)) && !cuts.contains(&(1, 5)) && cuts.contains(&(1, 3)));
    }

    #[test]
    fn nemesis_names_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_kinds("all").unwrap(), NemesisKind::ALL.to_vec());
        assert_eq!(
            parse_kinds("kill,pause").unwrap(),
            vec![NemesisKind::Kill, NemesisKind::Pause]
        );
        assert_eq!(
            parse_kinds("membership").unwrap(),
            vec![NemesisKind::Membership]
        );
        assert!(parse_kinds("flood").is_err());
        assert!(parse_kinds("").is_err());
        assert!(parse_kinds("none").unwrap().is_empty());
    }
}

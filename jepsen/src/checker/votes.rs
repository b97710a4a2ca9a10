//! Votes: a node never goes back to an older vote, and so never grants two
//! candidates the same term, across every restart and power loss.
//!
//! openraft 0.9 (its default "advanced" leader ids) orders votes by term,
//! then the node voted for, then whether a quorum granted it: a term may
//! see several leader ids, one per candidate, and a node may move within a
//! term to a candidate with a higher id (log ids carry the leader id, so two
//! leaders of one term never write the same log id). "Voting twice in one
//! term" in openraft's terms is therefore granting a vote lower than one
//! granted before, which is what this check looks for.
//!
//! The store logs `vote saved term=T voted_for=N committed=B` once a vote is
//! durable, and at every start either `vote read term=T ...` or `no vote
//! stored`. A node's `node.log` holds all its lives in order, so the check
//! walks those lines: every saved vote must be at least the last one known
//! (`vote-regression`), and every vote read at a start must be at least the
//! last one saved (`lost-vote`).

use std::path::Path;

use crate::checker::Anomaly;

/// A vote as the store logs it; `None` for `no vote stored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedVote {
    /// The term.
    pub term: u64,
    /// The node voted for (the leader, once committed).
    pub voted_for: u64,
    /// Whether a quorum granted it.
    pub committed: bool,
}

impl LoggedVote {
    /// openraft's order of votes: term, then the node voted for, then
    /// committed.
    fn order(&self) -> (u64, u64, bool) {
        (self.term, self.voted_for, self.committed)
    }
}

/// One vote line of a node's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteEvent {
    /// Made durable by `save_vote`.
    Saved(LoggedVote),
    /// Found at start-up; `None` when the store held no vote.
    Read(Option<LoggedVote>),
}

/// What the votes of all nodes showed.
#[derive(Clone, Debug, Default)]
pub struct VoteSummary {
    /// Votes saved, over all nodes.
    pub saved: usize,
    /// Votes read at starts, over all nodes.
    pub read: usize,
}

/// Reads `nodes/n<id>/node.log` under `run_dir` for every node that has a
/// directory there and checks its votes.
pub fn check_run(run_dir: &Path) -> anyhow::Result<(VoteSummary, Vec<Anomaly>)> {
    let mut summary = VoteSummary::default();
    let mut anomalies = Vec::new();
    let mut node_dirs: Vec<_> = std::fs::read_dir(run_dir.join("nodes"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    node_dirs.sort();
    for dir in node_dirs {
        let log = dir.join("node.log");
        let Ok(text) = std::fs::read_to_string(&log) else {
            continue;
        };
        let node = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("?")
            .to_string();
        let events = parse_log(&text);
        summary.saved += events
            .iter()
            .filter(|e| matches!(e, VoteEvent::Saved(_)))
            .count();
        summary.read += events
            .iter()
            .filter(|e| matches!(e, VoteEvent::Read(_)))
            .count();
        anomalies.extend(check_node(&node, &events));
    }
    Ok((summary, anomalies))
}

/// The vote lines of one node's log, in order.
pub fn parse_log(text: &str) -> Vec<VoteEvent> {
    text.lines()
        .filter_map(|line| {
            let line = strip_ansi(line);
            if line.contains("no vote stored") {
                Some(VoteEvent::Read(None))
            } else if line.contains("vote saved") {
                parse_vote(&line).map(VoteEvent::Saved)
            } else if line.contains("vote read") {
                parse_vote(&line).map(|vote| VoteEvent::Read(Some(vote)))
            } else {
                None
            }
        })
        .collect()
}

/// The anomalies in one node's vote lines.
pub fn check_node(node: &str, events: &[VoteEvent]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut last_saved: Option<LoggedVote> = None;
    let mut known: Option<LoggedVote> = None;
    for event in events {
        match *event {
            VoteEvent::Saved(vote) => {
                if let Some(previous) = known.filter(|k| vote.order() < k.order()) {
                    anomalies.push(anomaly(
                        "vote-regression",
                        format!("node {node} saved {vote:?} after {previous:?}"),
                    ));
                }
                last_saved = Some(vote);
                known = Some(vote);
            }
            VoteEvent::Read(read) => {
                if let Some(saved) = last_saved {
                    if read.is_none_or(|vote| vote.order() < saved.order()) {
                        anomalies.push(anomaly(
                            "lost-vote",
                            format!("node {node} started with {read:?} after saving {saved:?}"),
                        ));
                    }
                }
                if read.is_some() {
                    known = read;
                }
            }
        }
    }
    anomalies
}

fn anomaly(check: &'static str, description: String) -> Anomaly {
    Anomaly {
        check,
        key: None,
        description,
        slice: Vec::new(),
    }
}

/// `term=3 voted_for=2 committed=true` anywhere in the line.
fn parse_vote(line: &str) -> Option<LoggedVote> {
    Some(LoggedVote {
        term: field(line, "term=")?.parse().ok()?,
        voted_for: field(line, "voted_for=")?.parse().ok()?,
        committed: field(line, "committed=")?.parse().ok()?,
    })
}

/// The value after ` name` up to the next space.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}"))? + name.len() + 1;
    line[start..].split_whitespace().next()
}

/// The line without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: &str = "\
2026-12-05T10:00:00Z  INFO orrery_store::log_store: no vote stored
2026-12-05T10:00:01Z  INFO orrery_store::log_store: vote saved term=1 voted_for=2 committed=false
2026-12-05T10:00:01Z  INFO orrery_store::log_store: vote saved term=1 voted_for=2 committed=true
2026-12-05T10:00:05Z  INFO orrery_store::log_store: vote read term=1 voted_for=2 committed=true
2026-12-05T10:00:07Z  INFO orrery_store::log_store: vote saved term=2 voted_for=3 committed=false
";

    #[test]
    fn a_node_that_keeps_its_votes_is_fine() {
        let events = parse_log(LIFE);
        assert_eq!(events.len(), 5);
        assert!(check_node("n1", &events).is_empty());
    }

    #[test]
    fn colour_codes_are_ignored() {
        let line = "\u{1b}[32m INFO\u{1b}[0m x: vote saved \u{1b}[3mterm\u{1b}[0m\u{1b}[2m=\u{1b}[0m4 \
                    \u{1b}[3mvoted_for\u{1b}[0m\u{1b}[2m=\u{1b}[0m1 \u{1b}[3mcommitted\u{1b}[0m\u{1b}[2m=\u{1b}[0mfalse";
        assert_eq!(
            parse_log(line),
            vec![VoteEvent::Saved(LoggedVote {
                term: 4,
                voted_for: 1,
                committed: false
            })]
        );
    }

    #[test]
    fn a_start_with_an_older_vote_is_a_lost_vote() {
        let text = format!(
            "{LIFE}2026-12-05T10:00:09Z  INFO x: vote read term=1 voted_for=2 committed=true\n"
        );
        let anomalies = check_node("n1", &parse_log(&text));
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].check, "lost-vote");
    }

    #[test]
    fn a_start_without_a_vote_after_saving_one_is_a_lost_vote() {
        let text = format!("{LIFE}2026-12-05T10:00:09Z  INFO x: no vote stored\n");
        assert_eq!(check_node("n1", &parse_log(&text))[0].check, "lost-vote");
    }

    #[test]
    fn moving_to_a_higher_candidate_or_the_winner_within_a_term_is_fine() {
        let text = "\
x: vote saved term=3 voted_for=1 committed=false
x: vote saved term=3 voted_for=2 committed=false
x: vote saved term=3 voted_for=2 committed=true
x: vote read term=3 voted_for=2 committed=true
";
        assert!(check_node("n1", &parse_log(text)).is_empty());
    }

    #[test]
    fn granting_a_lower_candidate_of_the_same_term_is_a_regression() {
        let text = "\
x: vote saved term=5 voted_for=3 committed=false
x: vote saved term=5 voted_for=1 committed=false
x: vote saved term=4 voted_for=3 committed=true
";
        let checks: Vec<&str> = check_node("n2", &parse_log(text))
            .iter()
            .map(|a| a.check)
            .collect();
        assert_eq!(checks, vec!["vote-regression", "vote-regression"]);
    }

    #[test]
    fn a_committed_vote_turning_uncommitted_at_a_start_is_a_lost_vote() {
        let text = "\
x: vote saved term=2 voted_for=1 committed=true
x: vote read term=2 voted_for=1 committed=false
";
        assert_eq!(check_node("n1", &parse_log(text))[0].check, "lost-vote");
    }
}

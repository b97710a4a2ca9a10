//! Votes: a node never votes twice in one term and never goes back to an
//! older vote, across every restart and power loss.
//!
//! The store logs `vote saved term=T voted_for=N committed=B` once a vote is
//! durable, and at every start either `vote read term=T ...` or `no vote
//! stored`. A node's `node.log` holds all its lives in order, so the check
//! walks those lines: every saved vote must be at least the last one known
//! (a higher term, or the same term for the same candidate), and every vote
//! read at a start must be at least the last one saved.

use std::collections::BTreeMap;
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
    // (term, committed) -> the node voted for: two grants (or two leaders) in one term
    // are two votes; a committed vote for the term's leader after a grant to another
    // candidate is openraft following the leader that won, not a second vote.
    let mut voted: BTreeMap<(u64, bool), u64> = BTreeMap::new();
    let mut last_saved: Option<LoggedVote> = None;
    let mut known: Option<LoggedVote> = None;
    for event in events {
        match *event {
            VoteEvent::Saved(vote) => {
                match voted.get(&(vote.term, vote.committed)) {
                    Some(&earlier) if earlier != vote.voted_for => anomalies.push(anomaly(
                        "double-vote",
                        format!(
                            "node {node} voted for {earlier} and for {} in term {}",
                            vote.voted_for, vote.term
                        ),
                    )),
                    _ => {
                        if let Some(problem) = known.and_then(|k| regression(k, vote)) {
                            anomalies.push(anomaly(
                                "vote-regression",
                                format!("node {node} saved {vote:?} after {known:?}: {problem}"),
                            ));
                        }
                    }
                }
                voted.insert((vote.term, vote.committed), vote.voted_for);
                last_saved = Some(vote);
                known = Some(vote);
            }
            VoteEvent::Read(read) => {
                if let Some(saved) = last_saved {
                    let problem = match read {
                        None => Some("the store came back without a vote".to_string()),
                        Some(vote) => regression(saved, vote),
                    };
                    if let Some(problem) = problem {
                        anomalies.push(anomaly(
                            "lost-vote",
                            format!(
                                "node {node} started with {read:?} after saving {saved:?}: {problem}"
                            ),
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

/// Why `next` may not follow `previous`, if it may not (openraft's order of
/// votes): a lower term; in the same term another node, unless `next` is the
/// committed vote of the term's leader replacing an uncommitted grant; or a
/// committed vote becoming uncommitted.
fn regression(previous: LoggedVote, next: LoggedVote) -> Option<String> {
    if next.term < previous.term {
        return Some(format!("term {} went back to {}", previous.term, next.term));
    }
    if next.term > previous.term {
        return None;
    }
    let follows_the_winner = next.committed && !previous.committed;
    if next.voted_for != previous.voted_for && !follows_the_winner {
        Some(format!(
            "two votes in term {}: for {} and for {}",
            next.term, previous.voted_for, next.voted_for
        ))
    } else if previous.committed && !next.committed {
        Some(format!("the committed vote of term {} was lost", next.term))
    } else {
        None
    }
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
    fn following_the_leader_that_won_a_term_is_not_a_second_vote() {
        let text = "\
x: vote saved term=5 voted_for=1 committed=false
x: vote saved term=5 voted_for=3 committed=true
x: vote read term=5 voted_for=3 committed=true
";
        assert!(check_node("n2", &parse_log(text)).is_empty());
    }

    #[test]
    fn two_candidates_in_one_term_is_a_double_vote() {
        let text = "\
x: vote saved term=5 voted_for=1 committed=false
x: vote read term=4 voted_for=1 committed=true
x: vote saved term=5 voted_for=3 committed=false
";
        let checks: Vec<&str> = check_node("n2", &parse_log(text))
            .iter()
            .map(|a| a.check)
            .collect();
        assert_eq!(checks, vec!["lost-vote", "double-vote"]);
    }
}

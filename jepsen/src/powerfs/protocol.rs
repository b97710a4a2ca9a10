//! The control protocol's words: the requests, and the replies as types that
//! both the daemon (which prints them) and the client (which parses them)
//! use.
//!
//! One line per request and one per reply: `ping` -> `ok`; `lose-power` ->
//! `ok files=<n> bytes=<n> entries=<n>`; `stats` -> `ok writes=<n>
//! fsyncs=<n> fdatasyncs=<n> fsyncdirs=<n> pending_files=<n>
//! pending_entries=<n>`; anything else -> `error <why>`.

use std::fmt;

use anyhow::{anyhow, bail, Context};

/// What one power loss undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Files whose data was rolled back to their last sync.
    pub files: u64,
    /// Bytes written back plus bytes cut or re-added to reach the synced sizes.
    pub bytes: u64,
    /// Directory entry operations undone.
    pub entries: u64,
}

/// The daemon's counters since it started, and what is pending now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// WRITE requests served.
    pub writes: u64,
    /// FSYNC requests on files without the datasync flag.
    pub fsyncs: u64,
    /// FSYNC requests on files with the datasync flag (fdatasync).
    pub fdatasyncs: u64,
    /// FSYNCDIR requests (and FSYNCs of directories).
    pub fsyncdirs: u64,
    /// Files with data changed since their last sync.
    pub pending_files: u64,
    /// Directory entry operations not yet durable.
    pub pending_entries: u64,
}

/// A request on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Is the file system mounted and serving?
    Ping,
    /// Undo everything not durable.
    LosePower,
    /// The counters.
    Stats,
}

impl Request {
    /// The request's line, without the newline.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::LosePower => "lose-power",
            Request::Stats => "stats",
        }
    }

    /// Parses a request line (surrounding white space ignored).
    pub fn parse(line: &str) -> Option<Request> {
        match line.trim() {
            "ping" => Some(Request::Ping),
            "lose-power" => Some(Request::LosePower),
            "stats" => Some(Request::Stats),
            _ => None,
        }
    }
}

impl fmt::Display for PowerLossReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok files={} bytes={} entries={}",
            self.files, self.bytes, self.entries
        )
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok writes={} fsyncs={} fdatasyncs={} fsyncdirs={} pending_files={} pending_entries={}",
            self.writes,
            self.fsyncs,
            self.fdatasyncs,
            self.fsyncdirs,
            self.pending_files,
            self.pending_entries
        )
    }
}

/// The `key=value` fields of an `ok ...` reply; an `error ...` reply is an
/// error carrying its text.
fn fields(reply: &str) -> anyhow::Result<Vec<(&str, u64)>> {
    let reply = reply.trim();
    if let Some(why) = reply.strip_prefix("error") {
        bail!("powerfs: {}", why.trim());
    }
    let rest = reply
        .strip_prefix("ok")
        .ok_or_else(|| anyhow!("powerfs: unexpected reply {reply:?}"))?;
    rest.split_whitespace()
        .map(|field| {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow!("powerfs: bad field {field:?} in {reply:?}"))?;
            let v = v
                .parse()
                .with_context(|| format!("powerfs: bad number in {field:?}"))?;
            Ok((k, v))
        })
        .collect()
}

/// The value of `key` among `fields`.
fn field(fields: &[(&str, u64)], key: &str) -> anyhow::Result<u64> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow!("powerfs: reply lacks {key}="))
}

/// Checks a reply is a bare `ok`.
pub fn parse_ok(reply: &str) -> anyhow::Result<()> {
    fields(reply).map(|_| ())
}

impl PowerLossReport {
    /// Parses a `lose-power` reply.
    pub fn parse(reply: &str) -> anyhow::Result<PowerLossReport> {
        let f = fields(reply)?;
        Ok(PowerLossReport {
            files: field(&f, "files")?,
            bytes: field(&f, "bytes")?,
            entries: field(&f, "entries")?,
        })
    }
}

impl Stats {
    /// Parses a `stats` reply.
    pub fn parse(reply: &str) -> anyhow::Result<Stats> {
        let f = fields(reply)?;
        Ok(Stats {
            writes: field(&f, "writes")?,
            fsyncs: field(&f, "fsyncs")?,
            fdatasyncs: field(&f, "fdatasyncs")?,
            fsyncdirs: field(&f, "fsyncdirs")?,
            pending_files: field(&f, "pending_files")?,
            pending_entries: field(&f, "pending_entries")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: print a report and stats, parse them back; parse an error.
    /// Checks: the round trip is exact and `error ...` is an error.
    #[test]
    fn replies_round_trip() {
        let r = PowerLossReport {
            files: 3,
            bytes: 4096,
            entries: 2,
        };
        assert_eq!(r.to_string(), "ok files=3 bytes=4096 entries=2");
        assert_eq!(PowerLossReport::parse(&r.to_string()).unwrap(), r);
        let s = Stats {
            writes: 1,
            fsyncs: 2,
            fdatasyncs: 3,
            fsyncdirs: 4,
            pending_files: 5,
            pending_entries: 6,
        };
        assert_eq!(Stats::parse(&s.to_string()).unwrap(), s);
        assert!(parse_ok("ok\n").is_ok());
        let err = PowerLossReport::parse("error unknown command").unwrap_err();
        assert!(err.to_string().contains("unknown command"));
        assert_eq!(Request::parse(" lose-power\n"), Some(Request::LosePower));
        assert_eq!(Request::parse("reboot"), None);
    }
}

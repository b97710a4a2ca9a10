//! How answers are shown: a human table (the default) or stable JSON.
//!
//! Every command turns its response message into a view (a plain struct in
//! [`cluster`], [`namespaces`], [`providers`] or [`modules`]) that
//! implements [`Render`]: `serde` gives
//! the JSON (field names and shapes documented in `docs/cli.md`; lists are
//! JSON arrays), [`Render::table`] the text for people. Nothing here talks
//! to the cluster, so every format is tested on sample responses. `watch`
//! prints one line per event instead ([`watch`]).

pub mod cluster;
pub mod modules;
pub mod namespaces;
pub mod providers;
pub mod settings;
pub mod watch;

use std::io::Write;

use serde::{Deserialize, Serialize};

/// The output format, `-o/--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned columns and `key  value` lines for people.
    #[default]
    Table,
    /// One JSON document: an object, or an array for lists.
    Json,
}

/// A view that can be printed in either format.
pub trait Render: Serialize {
    /// The human form, ending with a newline.
    fn table(&self) -> String;
}

/// The text to print for a view: its table, or pretty-printed JSON (two
/// spaces of indent) followed by a newline.
pub fn render<T: Render + ?Sized>(format: OutputFormat, view: &T) -> String {
    match format {
        OutputFormat::Table => view.table(),
        OutputFormat::Json => {
            // Views hold only strings, numbers, booleans, options, maps
            // with string keys, vectors and JSON trees: serialization
            // cannot fail.
            let mut json = serde_json::to_string_pretty(view).expect("views serialize to JSON");
            json.push('\n');
            json
        }
    }
}

/// Writes an answer to standard output. A closed pipe (`orrery ... | head`)
/// is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Columns separated by two spaces, each as wide as its widest cell, an
/// upper-case header row first; no trailing spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines, the values aligned.
pub(crate) fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let line = format!("{key:width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A number the cluster reports as 0 when unknown.
pub(crate) fn known(n: u64) -> Option<u64> {
    (n != 0).then_some(n)
}

/// An optional number for a table cell: `-` when unknown.
pub(crate) fn cell(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// `yes` or `no`.
pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns align on the widest cell and lines carry no trailing spaces.
    #[test]
    fn aligns_tables() {
        let text = table(
            &["ID", "ADDRESS", "OK"],
            &[
                vec!["1".into(), "10.0.0.1:7400".into(), "yes".into()],
                vec!["12".into(), "h:1".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "ID  ADDRESS        OK\n\
             1   10.0.0.1:7400  yes\n\
             12  h:1\n"
        );
        assert_eq!(
            key_values(&[("leader", "1".into()), ("cluster id", "c".into())]),
            "leader      1\ncluster id  c\n"
        );
    }
}

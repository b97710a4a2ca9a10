//! Comma-separated lists of names on the command line (`--nemesis
//! partition,kill`, `--workload all`).

use std::str::FromStr;

use anyhow::bail;

/// Parses `a,b,c` (or `all`, meaning every one of `all`) into distinct
/// values, in order; an empty list is refused, naming `what`.
pub fn parse_list<T>(list: &str, all: &[T], what: &str) -> anyhow::Result<Vec<T>>
where
    T: FromStr<Err = anyhow::Error> + PartialEq + Copy,
{
    let mut values: Vec<T> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let named = if name == "all" {
            all.to_vec()
        } else {
            vec![name.parse()?]
        };
        for value in named {
            if !values.contains(&value) {
                values.push(value);
            }
        }
    }
    if values.is_empty() {
        bail!("no {what} given");
    }
    Ok(values)
}

//! Reading allowlist files as plain JSON: the tests check the file format
//! docs/allowlist-format.md documents, not the library's own types, so a change to the format
//! shows up here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// A parsed allowlist file.
#[derive(Clone, Debug)]
pub struct Allowlist(pub Value);

impl Allowlist {
    /// Reads and parses `path`, panicking with its text if it is not JSON.
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read allowlist {}: {e}", path.display()));
        Self::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
    }

    /// Parses allowlist text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text).map(Self)
    }

    /// Calls of the syscall `name`, summed over architectures.
    pub fn count(&self, name: &str) -> u64 {
        self.syscalls()
            .iter()
            .filter(|s| s["name"].as_str() == Some(name))
            .map(|s| s["count"].as_u64().expect("count is a number"))
            .sum()
    }

    /// The names of every syscall seen.
    pub fn names(&self) -> BTreeSet<String> {
        self.syscalls()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The `syscalls` array.
    pub fn syscalls(&self) -> &Vec<Value> {
        self.0["syscalls"]
            .as_array()
            .unwrap_or_else(|| panic!("no syscalls array in {:#}", self.0))
    }

    /// The rows of an optional array field (`runtime_init`, `multiplexed`, `executables`);
    /// empty when the field is absent, as docs/allowlist-format.md says it is when there is
    /// nothing to list.
    pub fn rows(&self, field: &str) -> &[Value] {
        match &self.0[field] {
            Value::Null => &[],
            v => v
                .as_array()
                .unwrap_or_else(|| panic!("{field} is not an array in {:#}", self.0)),
        }
    }

    /// The names in `syscalls` (or `runtime_init`) rows.
    pub fn names_in(&self, field: &str) -> BTreeSet<String> {
        self.rows(field)
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The `syscalls` row of (`arch`, `nr`), if any.
    pub fn row(&self, arch: &str, nr: u64) -> Option<&Value> {
        self.syscalls()
            .iter()
            .find(|s| s["arch"] == arch && s["nr"].as_u64() == Some(nr))
    }

    /// `complete`: true only for the final file.
    pub fn complete(&self) -> bool {
        self.0["complete"]
            .as_bool()
            .unwrap_or_else(|| panic!("no complete flag in {:#}", self.0))
    }

    /// `recorder.attach`: `tp_btf` or `raw_tp`.
    pub fn attach(&self) -> &str {
        self.0["recorder"]["attach"].as_str().unwrap_or_default()
    }

    /// `totals.calls`.
    pub fn total_calls(&self) -> u64 {
        self.0["totals"]["calls"].as_u64().unwrap_or_default()
    }

    /// The `target` object.
    pub fn target(&self) -> &Value {
        &self.0["target"]
    }

    /// Panics unless every one of `names` was seen, listing what was.
    pub fn assert_has(&self, names: &[&str]) {
        let seen = self.names();
        let missing: Vec<_> = names.iter().filter(|n| !seen.contains(**n)).collect();
        assert!(
            missing.is_empty(),
            "missing {missing:?}; the allowlist has {seen:?}"
        );
    }

    /// Panics unless at least one of `names` was seen (for calls whose variant depends on the
    /// libc or busybox build, e.g. fork vs clone vs clone3).
    pub fn assert_has_one_of(&self, names: &[&str]) {
        let seen = self.names();
        assert!(
            names.iter().any(|n| seen.contains(*n)),
            "none of {names:?}; the allowlist has {seen:?}"
        );
    }
}

/// An RFC 3339 UTC timestamp as written in allowlists (`2026-11-27T18:39:07.581576163Z`), as
/// nanoseconds since the Unix epoch; the fraction may have any number of digits, so the strings
/// themselves do not sort.
pub fn timestamp_ns(v: &Value) -> i128 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp {v} is not a string"));
    let parse = |r: std::ops::Range<usize>| -> i128 {
        s.get(r)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {s:?}"))
    };
    let (y, m, d) = (parse(0..4), parse(5..7), parse(8..10));
    let (hh, mm, ss) = (parse(11..13), parse(14..16), parse(17..19));
    let rest = s[19..]
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("timestamp {s:?} is not UTC"));
    let nanos = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits
                .parse::<i128>()
                .unwrap_or_else(|_| panic!("bad fraction in {s:?}"))
        }
        None => 0,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000_000) + nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_compare_by_time_not_by_text() {
        let t = |s: &str| timestamp_ns(&Value::from(s));
        assert_eq!(t("1970-01-01T00:00:00Z"), 0);
        assert_eq!(
            t("1970-01-02T00:00:01.5Z"),
            (86_401 * 1_000_000_000) + 500_000_000
        );
        assert_eq!(t("2000-03-01T00:00:00Z"), 951_868_800 * 1_000_000_000);
        // Shorter fraction, later time.
        assert!(t("2026-11-27T18:59:50.98552562Z") < t("2026-11-27T18:59:50.985525638Z"));
    }
}

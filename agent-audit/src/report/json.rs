//! The JSON form of a report (`agent-audit/report/v1`), for CI tools to gate on. Its fields are
//! documented in docs/reports.md; within v1 they are only ever added.

use super::Report;

/// Pretty JSON with a trailing newline; the same report always gives the same bytes.
pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("report serializes");
    s.push('\n');
    s
}

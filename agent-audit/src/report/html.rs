//! The HTML form of a report: one self-contained page (inline CSS, JS and SVG; it fetches
//! nothing), with bar charts of calls per category and of the top syscalls, sortable tables,
//! and a print style sheet.

use std::fmt::Write;

use super::{CategoryRow, Report, RuntimeInitVerdict, SyscallRow};

const CSS: &str = include_str!("assets/report.css");
const SORT_JS: &str = include_str!("assets/sort.js");

/// Bars in the top-syscalls chart.
const TOP_SYSCALLS: usize = 15;
/// Programs named per table cell.
const PROGRAMS_PER_CELL: usize = 5;
/// One colour per category, in the category table's order; cycled if it ever grows.
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#86bcb6", "#d37295",
];

/// Renders the page.
pub fn render(report: &Report) -> String {
    let s = &report.summary;
    let targets: Vec<&str> = s.runs.iter().map(|r| r.target.as_str()).collect();
    let title = format!("agent-audit report: {}", targets.join("; "));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<header><h1>{}</h1><p class=\"meta\">{}</p></header>",
        esc(&title),
        esc(&report.generator)
    );
    summary(&mut h, report);
    refused(&mut h, report);
    findings(&mut h, report);
    charts(&mut h, report);
    allowed_table(&mut h, report);
    let _ = write!(h, "<script>\n{SORT_JS}</script>\n</body>\n</html>\n");
    h
}

fn summary(h: &mut String, report: &Report) {
    let s = &report.summary;
    let _ = writeln!(
        h,
        "<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">"
    );
    for (label, value, alert) in summary_cards(report) {
        let class = if alert { "card alert" } else { "card" };
        let _ = writeln!(
            h,
            "<div class=\"{class}\"><b>{}</b>{label}</div>",
            esc(&value)
        );
    }
    let _ = writeln!(h, "</div>");
    if let Some(note) = &s.verify_note {
        let _ = writeln!(h, "<p class=\"verify-note\">{}</p>", esc(note));
    }
    runs_table(h, report);
    let arches: Vec<String> = s
        .per_arch
        .iter()
        .map(|a| {
            format!(
                "{}: {} syscalls, {} calls",
                a.arch.scmp_name(),
                a.distinct,
                a.calls
            )
        })
        .collect();
    let _ = writeln!(h, "<p>Per architecture: {}.</p>", esc(&arches.join("; ")));
    let _ = writeln!(
        h,
        "<p id=\"convergence\">Convergence: {}.</p>",
        esc(&s.convergence.line)
    );
    profile_line(h, report);
    let _ = writeln!(h, "</section>");
}

/// The summary's cards: (label, value, whether it calls for attention).
fn summary_cards(report: &Report) -> [(&'static str, String, bool); 8] {
    let s = &report.summary;
    let findings = report.finding_count();
    let verify = match s.verify_passed {
        Some(true) => "PASSED",
        Some(false) => "FAILED",
        None => "not run",
    };
    [
        ("findings", findings.to_string(), findings > 0),
        ("verify", verify.to_string(), s.verify_passed == Some(false)),
        ("runs merged", s.runs.len().to_string(), false),
        ("seconds recorded", s.duration_seconds.to_string(), false),
        ("calls", s.totals.calls.to_string(), false),
        (
            "distinct syscalls",
            s.totals.distinct_names.to_string(),
            false,
        ),
        (
            "allowed by the profile",
            s.profile.allowed.to_string(),
            false,
        ),
        (
            "denied explicitly",
            s.profile.denied_explicitly.to_string(),
            false,
        ),
    ]
}

fn runs_table(h: &mut String, report: &Report) {
    let rows: Vec<Vec<Cell>> = report
        .summary
        .runs
        .iter()
        .map(|r| {
            vec![
                Cell::code(&r.file),
                Cell::text(&r.target),
                Cell::text(&r.started_at),
                Cell::num_f(r.duration_seconds),
                Cell::num(r.calls),
                Cell::num(r.distinct),
                Cell::text(if r.complete { "yes" } else { "no (snapshot)" }),
                Cell::text(&r.host),
            ]
        })
        .collect();
    table(
        h,
        "runs",
        &[
            "run",
            "target",
            "started",
            "seconds#",
            "calls#",
            "distinct#",
            "complete",
            "host",
        ],
        &rows,
    );
}

/// The profile under review, and what it changes against `--base`.
fn profile_line(h: &mut String, report: &Report) {
    let s = &report.summary;
    let file = s
        .profile
        .file
        .as_deref()
        .unwrap_or("generated from the allowlists");
    let _ = writeln!(
        h,
        "<p>Profile <code>{}</code>: default action <code>{}</code>, architectures {}, \
         {} allowed, {} denied explicitly, {} rules.</p>",
        esc(file),
        esc(&s.profile.default_action),
        esc(&s.profile.architectures.join(", ")),
        s.profile.allowed,
        s.profile.denied_explicitly,
        s.profile.rules
    );
    if let Some(base) = &s.base {
        let _ = writeln!(
            h,
            "<p id=\"base-changes\">Against <code>{}</code>: added {}; removed {}; changed {}.</p>",
            esc(&base.base),
            code_list(&base.added),
            code_list(&base.removed),
            code_list(&base.changed)
        );
    }
}

/// What failed under `verify`, first: its failures, then the calls it saw denied.
fn verify_findings(h: &mut String, report: &Report) {
    let f = &report.findings;
    let denied = f.verify_denials();
    if f.verify_failed.is_empty() && denied.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h3 id=\"verify-failed\">Verify FAILED under the profile</h3><ul>"
    );
    for failure in &f.verify_failed {
        let _ = writeln!(h, "<li>{}</li>", esc(&failure.what));
    }
    for d in denied {
        let _ = writeln!(
            h,
            "<li>denied: <code>{}</code> ({}) {} time(s)</li>",
            esc(d.name.as_deref().unwrap_or("?")),
            d.arch.short_name(),
            d.count
        );
    }
    let _ = writeln!(h, "</ul>");
}

fn findings(h: &mut String, report: &Report) {
    let _ = writeln!(h, "<section id=\"findings\"><h2>Findings</h2>");
    if report.finding_count() == 0 {
        let _ = writeln!(h, "<p class=\"none\">None.</p>");
    }
    verify_findings(h, report);
    not_converged(h, report);
    dangerous_observed(h, report);
    denied_but_used(h, report);
    arch_gaps(h, report);
    runtime_init_only(h, report);
    privilege_drops(h, report);
    notes(h, report);
    let _ = writeln!(h, "</section>");
}

fn not_converged(h: &mut String, report: &Report) {
    if let Some(added) = &report.findings.not_converged {
        let _ = writeln!(
            h,
            "<h3>Not converged</h3><p>Run {} (<code>{}</code>) still added {}: record more runs \
             (<code>--until-stable</code>) before trusting the profile.</p>",
            added.run,
            esc(&added.file),
            code_list(&added.added)
        );
    }
}

fn dangerous_observed(h: &mut String, report: &Report) {
    let f = &report.findings;
    if f.dangerous_observed.is_empty() {
        return;
    }
    let mark_root = report.summary.mixed_privileges;
    let _ = writeln!(h, "<h3>Dangerous syscalls observed</h3>");
    let rows: Vec<Vec<Cell>> = f
        .dangerous_observed
        .iter()
        .map(|d| {
            vec![
                Cell::code(&d.name),
                Cell::num(d.count),
                Cell::text(&d.programs.summary(PROGRAMS_PER_CELL, mark_root)),
                Cell::text(&d.category),
                Cell::text(&d.reason),
                Cell::tag(
                    if d.allowed { "allowed" } else { "denied" },
                    &d.profile_action,
                ),
            ]
        })
        .collect();
    let header = [
        "syscall",
        "calls#",
        "programs",
        "category",
        "why dangerous",
        "profile",
    ];
    table(h, "dangerous", &header, &rows);
}

fn denied_but_used(h: &mut String, report: &Report) {
    let f = &report.findings;
    if f.denied_but_used.is_empty() {
        return;
    }
    let _ = writeln!(h, "<h3>Used by the workload but denied by the profile</h3>");
    let rows: Vec<Vec<Cell>> = f
        .denied_but_used
        .iter()
        .map(|d| {
            vec![
                Cell::text(d.source.as_str()),
                Cell::code(d.name.as_deref().unwrap_or("?")),
                Cell::text(d.arch.short_name()),
                d.nr.map_or(Cell::text(""), |n| Cell::num(n.into())),
                Cell::num(d.count),
                Cell::text(&d.why),
            ]
        })
        .collect();
    let header = ["source", "syscall", "arch", "nr#", "calls#", "why"];
    table(h, "denied", &header, &rows);
}

/// First of all: what the profile in force refused while the recordings ran.
fn refused(h: &mut String, report: &Report) {
    if report.refused.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<section id=\"refused\"><h2>Refused under the profile in force</h2>"
    );
    let rows: Vec<Vec<Cell>> = report
        .refused
        .iter()
        .map(|r| {
            let actions: Vec<String> = r
                .actions
                .iter()
                .map(|a| format!("{a:?}").to_lowercase())
                .collect();
            vec![
                Cell::code(&r.name),
                Cell::text(r.arch.short_name()),
                Cell::num(r.count),
                Cell::text(&actions.join(", ")),
                Cell::text(if r.allowed_now {
                    "allowed"
                } else {
                    "still denied"
                }),
                Cell::text(&r.programs.summary(3, false)),
            ]
        })
        .collect();
    let header = [
        "syscall",
        "arch",
        "refused calls#",
        "action",
        "profile under review",
        "programs",
    ];
    table(h, "refused", &header, &rows);
    let _ = writeln!(h, "</section>");
}

fn arch_gaps(h: &mut String, report: &Report) {
    let f = &report.findings;
    if f.arch_gaps.is_empty() {
        return;
    }
    let _ = writeln!(h, "<h3>Missing on a listed architecture</h3>");
    let rows: Vec<Vec<Cell>> = f
        .arch_gaps
        .iter()
        .map(|g| {
            vec![
                Cell::text(g.arch.short_name()),
                Cell::code(&g.name),
                Cell::text(&g.why),
            ]
        })
        .collect();
    table(
        h,
        "arch-gaps",
        &["arch", "syscall", "why it is needed"],
        &rows,
    );
}

fn runtime_init_only(h: &mut String, report: &Report) {
    let f = &report.findings;
    if f.runtime_init_only.is_empty() {
        return;
    }
    let _ = writeln!(h, "<h3>Only the container runtime's init used these</h3>");
    let rows: Vec<Vec<Cell>> = f
        .runtime_init_only
        .iter()
        .map(|r| {
            let class = match r.profile {
                RuntimeInitVerdict::Allowed => "allowed",
                RuntimeInitVerdict::Denied | RuntimeInitVerdict::RuntimeBaseline => "expected",
            };
            vec![
                Cell::code(&r.name),
                Cell::num(r.count),
                Cell::tag(class, r.profile.label()),
            ]
        })
        .collect();
    table(h, "runtime-init", &["syscall", "calls#", "profile"], &rows);
}

fn privilege_drops(h: &mut String, report: &Report) {
    for d in &report.findings.privilege_drops {
        let _ = writeln!(
            h,
            "<h3>Privilege drop in <code>{}</code></h3><p>First call as another user: {}. \
             {} syscall(s) only as root: {}. {} made as another user. Run as root: {}. \
             Run as another user: {}.</p>",
            esc(&d.file),
            esc(&d.first_unprivileged_call),
            d.root_only.len(),
            code_list(&d.root_only),
            d.unprivileged,
            esc(&d.root_executables.join(", ")),
            esc(&d.unprivileged_executables.join(", "))
        );
    }
}

fn notes(h: &mut String, report: &Report) {
    let notes = &report.findings.notes;
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(h, "<h3>Notes</h3><ul>");
    for note in notes {
        let _ = writeln!(h, "<li>{}</li>", esc(note));
    }
    let _ = writeln!(h, "</ul>");
}

fn charts(h: &mut String, report: &Report) {
    let _ = writeln!(
        h,
        "<section id=\"charts\"><h2>Where the calls go</h2><div class=\"charts\">"
    );
    let colour = |id: &str| {
        let index = report
            .categories
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    let bars: Vec<Bar> = report
        .categories
        .iter()
        .map(|c: &CategoryRow| Bar {
            key: &c.id,
            label: &c.title,
            value: c.calls,
            note: format!("{} calls, {} syscalls", c.calls, c.syscalls),
            colour: colour(&c.id),
        })
        .collect();
    bar_chart(h, "chart-categories", "Calls by category", &bars);
    let top = report.top_syscalls(TOP_SYSCALLS);
    let bars: Vec<Bar> = top
        .iter()
        .map(|r: &&SyscallRow| Bar {
            key: &r.name,
            label: &r.name,
            value: r.count,
            note: format!("{} calls ({})", r.count, r.category),
            colour: colour(&r.category),
        })
        .collect();
    bar_chart(
        h,
        "chart-top",
        &format!("Top {} syscalls", bars.len()),
        &bars,
    );
    let _ = writeln!(h, "</div></section>");
}

struct Bar<'a> {
    key: &'a str,
    label: &'a str,
    value: u64,
    note: String,
    colour: &'a str,
}

/// A horizontal bar chart as inline SVG: one `<g class="bar">` per bar.
fn bar_chart(h: &mut String, id: &str, caption: &str, bars: &[Bar]) {
    const LABEL: u64 = 130;
    const WIDTH: u64 = 300;
    const ROW: u64 = 22;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let height = ROW * bars.len() as u64 + 4;
    let total_width = LABEL + WIDTH + 170;
    let _ = writeln!(
        h,
        "<figure><figcaption>{}</figcaption>\n<svg id=\"{id}\" \
         width=\"{total_width}\" height=\"{height}\" viewBox=\"0 0 {total_width} {height}\" \
         role=\"img\" aria-label=\"{}\">",
        esc(caption),
        esc(caption)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = ROW * i as u64 + 2;
        // In u128: a count near u64::MAX times the width does not fit in u64. At most WIDTH
        // (no bar is longer than the longest).
        let w =
            u64::try_from((u128::from(bar.value) * u128::from(WIDTH)).div_ceil(u128::from(max)))
                .unwrap_or(WIDTH);
        let _ = writeln!(
            h,
            "<g class=\"bar\" data-key=\"{}\" data-value=\"{}\"><title>{}: {}</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"{}\"></rect>\
             <text x=\"{}\" y=\"{}\">{}</text></g>",
            esc(bar.key),
            bar.value,
            esc(bar.label),
            esc(&bar.note),
            LABEL - 6,
            y + 14,
            esc(bar.label),
            ROW - 6,
            bar.colour,
            LABEL + w + 6,
            y + 14,
            esc(&bar.note)
        );
    }
    let _ = writeln!(h, "</svg></figure>");
}

fn allowed_table(h: &mut String, report: &Report) {
    let mark_root = report.summary.mixed_privileges;
    let _ = writeln!(
        h,
        "<section id=\"allowed\"><h2>Allowed syscalls ({})</h2>\
         <p class=\"muted\">Click a column header to sort.</p>",
        report.syscalls.len()
    );
    let rows: Vec<Vec<Cell>> = report
        .syscalls
        .iter()
        .map(|r| {
            vec![
                Cell::code(&r.name),
                Cell::text(&r.category),
                Cell::num(r.count),
                Cell {
                    html: format!("{:.2}%", r.share * 100.0),
                    value: Some(r.share.to_string()),
                },
                Cell::text(&r.programs.summary(PROGRAMS_PER_CELL, mark_root)),
                Cell::text(&r.description),
                Cell::text(r.reason.kind),
                Cell::text(&r.reason.text),
            ]
        })
        .collect();
    let header = [
        "syscall",
        "category",
        "calls#",
        "share#",
        "programs",
        "what it does",
        "allowed as",
        "why",
    ];
    let marks: Vec<bool> = report.syscalls.iter().map(|r| r.dangerous).collect();
    table_with_marks(h, "syscall-table", &header, &rows, &marks);
    let _ = writeln!(h, "</section>");
}

/// A table cell: escaped HTML and, for numbers, the value to sort by.
struct Cell {
    html: String,
    value: Option<String>,
}

impl Cell {
    fn text(s: &str) -> Self {
        Cell {
            html: esc(s),
            value: None,
        }
    }
    fn code(s: &str) -> Self {
        Cell {
            html: format!("<code>{}</code>", esc(s)),
            value: None,
        }
    }
    fn num(n: u64) -> Self {
        Cell {
            html: n.to_string(),
            value: Some(n.to_string()),
        }
    }
    fn num_f(n: f64) -> Self {
        Cell {
            html: n.to_string(),
            value: Some(n.to_string()),
        }
    }
    fn tag(class: &str, text: &str) -> Self {
        Cell {
            html: format!("<span class=\"tag {class}\">{}</span>", esc(text)),
            value: None,
        }
    }
}

/// A sortable table; a header ending in `#` is a numeric column.
fn table(h: &mut String, id: &str, header: &[&str], rows: &[Vec<Cell>]) {
    table_with_marks(h, id, header, rows, &[]);
}

fn table_with_marks(
    h: &mut String,
    id: &str,
    header: &[&str],
    rows: &[Vec<Cell>],
    dangerous: &[bool],
) {
    let _ = write!(h, "<table id=\"{id}\" class=\"sortable\"><thead><tr>");
    for title in header {
        match title.strip_suffix('#') {
            Some(t) => {
                let _ = write!(h, "<th class=\"num\" data-type=\"num\">{}</th>", esc(t));
            }
            None => {
                let _ = write!(h, "<th>{}</th>", esc(title));
            }
        }
    }
    let _ = writeln!(h, "</tr></thead><tbody>");
    for (i, row) in rows.iter().enumerate() {
        let class = if dangerous.get(i).copied().unwrap_or(false) {
            " class=\"dangerous\""
        } else {
            ""
        };
        let _ = write!(h, "<tr{class}>");
        for cell in row {
            match &cell.value {
                Some(v) => {
                    let _ = write!(
                        h,
                        "<td class=\"num\" data-value=\"{}\">{}</td>",
                        esc(v),
                        cell.html
                    );
                }
                None => {
                    let _ = write!(h, "<td>{}</td>", cell.html);
                }
            }
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</tbody></table>");
}

fn code_list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("<code>{}</code>", esc(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

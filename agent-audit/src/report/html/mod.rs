//! The HTML form of a report: one self-contained page (inline CSS, JS and SVG; it fetches
//! nothing), with bar charts of calls per category and of the top syscalls, sortable tables,
//! and a print style sheet.

use std::fmt::Write;

use super::{DeniedSource, Report, VerdictStatus};

mod charts;
mod table;

use charts::charts;
use table::{code_list, code_spans, esc, table, table_with_marks, Cell};

const CSS: &str = include_str!("../assets/report.css");
const SORT_JS: &str = include_str!("../assets/sort.js");

/// Programs named per table cell.
const PROGRAMS_PER_CELL: usize = 5;
/// Renders the page.
pub fn render(report: &Report) -> String {
    let title = format!("agent-audit report: {}", report.targets().join("; "));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, report, &title);
    findings(&mut h, report);
    use_it(&mut h, report);
    information(&mut h, report);
    summary(&mut h, report);
    charts(&mut h, report);
    allowed_table(&mut h, report);
    let _ = write!(h, "<script>\n{SORT_JS}</script>\n</body>\n</html>\n");
    h
}

/// The first screen: the title, the verdict in one line, the cards.
fn header(h: &mut String, report: &Report, title: &str) {
    let class = match report.verdict.status {
        VerdictStatus::Ready => "ready",
        VerdictStatus::Unverified => "unverified",
        VerdictStatus::ChangesNeeded => "changes-needed",
    };
    let _ = writeln!(
        h,
        "<header><h1>{}</h1>\n<p id=\"verdict\" class=\"verdict {class}\">{}</p>\n\
         <div class=\"cards\">",
        esc(title),
        code_spans(&report.verdict.line)
    );
    for (label, value, alert) in summary_cards(report) {
        let class = if alert { "card alert" } else { "card" };
        let _ = writeln!(
            h,
            "<div class=\"{class}\"><b>{}</b>{label}</div>",
            esc(&value)
        );
    }
    let _ = writeln!(
        h,
        "</div><p class=\"meta\">{}</p></header>",
        esc(&report.generator)
    );
}

/// The ready-to-paste lines, each in a block that wraps rather than scrolls.
fn use_it(h: &mut String, report: &Report) {
    let u = &report.use_it;
    let _ = writeln!(h, "<section id=\"use-it\"><h2>Use it</h2>");
    let blocks = [
        ("Docker", &u.docker),
        (
            "Compose: the service's <code>security_opt</code>",
            &u.compose,
        ),
        (
            "Kubernetes: the Security Profiles Operator object, then the pod's \
             <code>securityContext</code>",
            &u.kubernetes,
        ),
        ("", &u.kubernetes_pod),
        (
            "CI: fail when the workload makes a call the profile does not allow",
            &u.ci,
        ),
    ];
    for (title, text) in blocks {
        if !title.is_empty() {
            let _ = writeln!(h, "<h3>{title}</h3>");
        }
        let _ = writeln!(h, "<pre><code>{}</code></pre>", esc(text));
    }
    let _ = writeln!(h, "</section>");
}

/// What asks for nothing, folded.
fn information(h: &mut String, report: &Report) {
    let count = report.verdict.information;
    if count == 0 {
        return;
    }
    let _ = writeln!(
        h,
        "<section id=\"information\"><details><summary><h2>Information ({count}): nothing to \
         change</h2></summary>"
    );
    runtime_init_only(h, report, false);
    dangerous_observed(h, report, false);
    privilege_drops(h, report);
    notes(h, report);
    let _ = writeln!(h, "</details></section>");
}

fn summary(h: &mut String, report: &Report) {
    let s = &report.summary;
    let _ = writeln!(h, "<section id=\"summary\"><h2>Summary</h2>");
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
fn summary_cards(report: &Report) -> [(&'static str, String, bool); 9] {
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
        ("information", report.verdict.information.to_string(), false),
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
        let _ = writeln!(h, "<li>{}</li>", code_spans(&failure.what));
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

/// What asks for a change, and only that.
fn findings(h: &mut String, report: &Report) {
    let _ = writeln!(
        h,
        "<section id=\"findings\"><h2>Findings ({})</h2>",
        report.finding_count()
    );
    if report.finding_count() == 0 {
        let _ = writeln!(h, "<p class=\"none\">None: nothing asks for a change.</p>");
    }
    verify_findings(h, report);
    not_converged(h, report);
    dangerous_observed(h, report, true);
    denied_but_used(h, report);
    arch_gaps(h, report);
    runtime_init_only(h, report, true);
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

/// The dangerous calls observed that ask for a change (`actionable`), or the others.
fn dangerous_observed(h: &mut String, report: &Report, actionable: bool) {
    let entries: Vec<_> = report
        .findings
        .dangerous_observed
        .iter()
        .filter(|d| d.actionable == actionable)
        .collect();
    if entries.is_empty() {
        return;
    }
    let mark_root = report.summary.mixed_privileges;
    let title = if actionable {
        "Dangerous syscalls observed and allowed without an accepted risk"
    } else {
        "Dangerous syscalls observed, denied or allowed as an accepted risk"
    };
    let _ = writeln!(h, "<h3>{title}</h3>");
    let rows: Vec<Vec<Cell>> = entries
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
    let id = if actionable {
        "dangerous"
    } else {
        "dangerous-information"
    };
    table(h, id, &header, &rows);
}

/// The recorded calls the profile denies (verify's denials are shown first, with its failures).
fn denied_but_used(h: &mut String, report: &Report) {
    let recorded: Vec<_> = report
        .findings
        .denied_but_used
        .iter()
        .filter(|d| d.source == DeniedSource::Recording)
        .collect();
    if recorded.is_empty() {
        return;
    }
    let _ = writeln!(h, "<h3>Used by the workload but denied by the profile</h3>");
    let rows: Vec<Vec<Cell>> = recorded
        .iter()
        .map(|d| {
            vec![
                Cell::text(d.source.as_str()),
                Cell::code(d.name.as_deref().unwrap_or("?")),
                Cell::text(d.arch.short_name()),
                d.nr.map_or(Cell::text(""), |n| Cell::num(n.into())),
                Cell::num(d.count),
                Cell::prose(&d.why),
            ]
        })
        .collect();
    let header = ["source", "syscall", "arch", "nr#", "calls#", "why"];
    table(h, "denied", &header, &rows);
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
                Cell::prose(&g.why),
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

/// Calls only the runtime's init made: those the profile allows for no reason (`actionable`),
/// or those it handles.
fn runtime_init_only(h: &mut String, report: &Report, actionable: bool) {
    let entries: Vec<_> = report
        .findings
        .runtime_init_only
        .iter()
        .filter(|r| r.actionable == actionable)
        .collect();
    if entries.is_empty() {
        return;
    }
    let (title, id, class) = if actionable {
        (
            "Allowed although only the container runtime's init used them",
            "runtime-init",
            "allowed",
        )
    } else {
        (
            "Only the container runtime's init used these, and the profile handles them",
            "runtime-init-information",
            "expected",
        )
    };
    let _ = writeln!(h, "<h3>{title}</h3>");
    let rows: Vec<Vec<Cell>> = entries
        .iter()
        .map(|r| {
            vec![
                Cell::code(&r.name),
                Cell::num(r.count),
                Cell::tag(class, r.profile.label()),
            ]
        })
        .collect();
    table(h, id, &["syscall", "calls#", "profile"], &rows);
}

/// The privilege drops of each target once, naming the runs that made them.
fn privilege_drops(h: &mut String, report: &Report) {
    for d in &report.information.privilege_drops {
        let _ = writeln!(
            h,
            "<h3>Privilege drop in {} run(s) of {}</h3><p>Runs: {}. {} syscall(s) only as root: \
             {}. Run as root: {}. Run as another user: {}.</p>",
            d.runs.len(),
            esc(&d.target),
            code_list(&d.runs),
            d.root_only.len(),
            code_list(&d.root_only),
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
        let _ = writeln!(h, "<li>{}</li>", code_spans(note));
    }
    let _ = writeln!(h, "</ul>");
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

//! The Markdown form of a report, sized for a pull-request comment: findings first, long tables
//! folded in `<details>`, and never more than GitHub's comment limit. When the full report is
//! too long, every table and list is cut to fewer rows (each cut says how many rows are left
//! out) until it fits.

use std::fmt::Write;

use super::{DeniedSource, Report};
use crate::allowlist::saturating_sum;
use crate::markdown::{code, escape};

/// GitHub's limit for a comment body, in characters; we count bytes, which is stricter.
pub const COMMENT_LIMIT: usize = 65_536;

/// Programs named per table cell.
const PROGRAMS_PER_CELL: usize = 3;

/// Renders the report within [`COMMENT_LIMIT`].
pub fn render(report: &Report) -> String {
    let full = render_with(report, usize::MAX);
    if full.len() <= COMMENT_LIMIT {
        return full;
    }
    let mut rows = report.syscalls.len().max(longest_finding_list(report));
    loop {
        rows /= 2;
        let md = render_with(report, rows);
        if md.len() <= COMMENT_LIMIT || rows == 0 {
            return cut_to_limit(md);
        }
    }
}

fn longest_finding_list(report: &Report) -> usize {
    let f = &report.findings;
    [
        f.dangerous_observed.len(),
        report.information.privilege_drops.len(),
        f.denied_but_used.len(),
        f.arch_gaps.len(),
        f.runtime_init_only.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// Last resort (only reachable with absurdly long names): cut at a character boundary.
fn cut_to_limit(mut md: String) -> String {
    const NOTE: &str = "\n\n… cut to fit a pull-request comment: see the JSON or HTML report.\n";
    if md.len() <= COMMENT_LIMIT {
        return md;
    }
    let mut end = COMMENT_LIMIT - NOTE.len();
    while !md.is_char_boundary(end) {
        end -= 1;
    }
    md.truncate(end);
    md.push_str(NOTE);
    md
}

fn render_with(report: &Report, max_rows: usize) -> String {
    let mut md = String::new();
    let s = &report.summary;
    let _ = writeln!(
        md,
        "## agent-audit report: {}\n",
        escape(&report.targets().join("; "))
    );
    let _ = writeln!(md, "**{}**\n", verdict_line(&report.verdict.line));
    let verify = match s.verify_passed {
        Some(true) => "verify PASSED",
        Some(false) => "verify **FAILED**",
        None => "not verified",
    };
    let _ = writeln!(
        md,
        "**{} finding(s)** · {verify} · {} information · {} run(s), {} s, {} calls, {} \
         distinct syscalls · profile {}: {} allowed, {} denied explicitly, {} rules\n",
        report.finding_count(),
        report.verdict.information,
        s.runs.len(),
        s.duration_seconds,
        s.totals.calls,
        s.totals.distinct_names,
        s.profile
            .file
            .as_deref()
            .map_or("(generated)".to_string(), code),
        s.profile.allowed,
        s.profile.denied_explicitly,
        s.profile.rules,
    );
    let _ = writeln!(md, "convergence: {}\n", s.convergence.line);
    findings(&mut md, report, max_rows);
    use_it(&mut md, report);
    information(&mut md, report, max_rows);
    summary(&mut md, report, max_rows);
    categories(&mut md, report);
    allowed_table(&mut md, report, max_rows);
    let _ = writeln!(md, "\n<sub>{}</sub>", escape(&report.generator));
    md
}

/// The verdict in Markdown: its backticked commands kept as code spans, the rest escaped.
fn verdict_line(line: &str) -> String {
    line.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { code(part) } else { escape(part) })
        .collect()
}

/// What asks for a change, and only that.
fn findings(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    let _ = writeln!(md, "### Findings ({})\n", report.finding_count());
    if report.finding_count() == 0 {
        let _ = writeln!(md, "None: nothing asks for a change.\n");
    }
    verify_findings(md, report, max_rows);
    if let Some(added) = &f.not_converged {
        let _ = writeln!(
            md,
            "**Not converged**: run {} (`{}`) still added {}: record more runs (`--until-stable`) \
             before trusting the profile.\n",
            added.run,
            escape(&added.file),
            code_list(&added.added, max_rows)
        );
    }
    dangerous_observed(md, report, true, max_rows);
    denied_but_used(md, report, max_rows);
    arch_gaps(md, report, max_rows);
    runtime_init_only(md, report, true, max_rows);
}

/// The ready-to-paste lines.
fn use_it(md: &mut String, report: &Report) {
    let u = &report.use_it;
    let _ = writeln!(md, "### Use it\n");
    let blocks = [
        ("Docker", "sh", &u.docker),
        ("Compose (the service's `security_opt`)", "yaml", &u.compose),
        (
            "Kubernetes: the Security Profiles Operator object, then the pod's `securityContext`",
            "sh",
            &u.kubernetes,
        ),
        ("", "yaml", &u.kubernetes_pod),
        (
            "CI: fail when the workload makes a call the profile does not allow",
            "sh",
            &u.ci,
        ),
    ];
    for (title, lang, text) in blocks {
        if !title.is_empty() {
            let _ = writeln!(md, "{title}:\n");
        }
        let _ = writeln!(md, "```{lang}\n{text}\n```\n");
    }
}

/// What asks for nothing, folded.
fn information(md: &mut String, report: &Report, max_rows: usize) {
    let count = report.verdict.information;
    if count == 0 {
        return;
    }
    let _ = writeln!(
        md,
        "<details><summary>Information ({count}): nothing to change</summary>\n"
    );
    runtime_init_only(md, report, false, max_rows);
    dangerous_observed(md, report, false, max_rows);
    privilege_drops(md, report, max_rows);
    let f = &report.findings;
    for note in &f.notes {
        let _ = writeln!(md, "- note: {}", escape(note));
    }
    if !f.notes.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(md, "</details>\n");
}

/// The dangerous calls observed that ask for a change (`actionable`), or the others.
fn dangerous_observed(md: &mut String, report: &Report, actionable: bool, max_rows: usize) {
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
    let _ = writeln!(md, "**{title}**\n");
    let rows = entries.iter().map(|d| {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            code(&d.name),
            d.count,
            escape(&d.programs.summary(PROGRAMS_PER_CELL, mark_root)),
            escape(&d.category),
            escape(&d.reason),
            escape(&d.profile_action)
        )
    });
    table(
        md,
        "| syscall | calls | programs | category | why it is dangerous | profile |",
        rows,
        max_rows,
    );
}

/// The recorded calls the profile denies (verify's denials are shown first, with its failures).
fn denied_but_used(md: &mut String, report: &Report, max_rows: usize) {
    let recorded: Vec<_> = report
        .findings
        .denied_but_used
        .iter()
        .filter(|d| d.source == DeniedSource::Recording)
        .collect();
    if recorded.is_empty() {
        return;
    }
    let _ = writeln!(md, "**Used by the workload but denied by the profile**\n");
    let rows = recorded.iter().map(|d| {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            d.source,
            code(d.name.as_deref().unwrap_or("?")),
            d.arch.short_name(),
            d.nr.map(|n| n.to_string()).unwrap_or_default(),
            d.count,
            escape(&d.why)
        )
    });
    table(
        md,
        "| source | syscall | arch | nr | calls | why |",
        rows,
        max_rows,
    );
}

fn arch_gaps(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    if f.arch_gaps.is_empty() {
        return;
    }
    let _ = writeln!(md, "**Missing on a listed architecture**\n");
    let rows = f.arch_gaps.iter().map(|g| {
        format!(
            "| {} | {} | {} |",
            g.arch.short_name(),
            code(&g.name),
            escape(&g.why)
        )
    });
    table(md, "| arch | syscall | why it is needed |", rows, max_rows);
}

/// Calls only the runtime's init made: those the profile allows for no reason (`actionable`),
/// or those it handles.
fn runtime_init_only(md: &mut String, report: &Report, actionable: bool, max_rows: usize) {
    let entries: Vec<_> = report
        .findings
        .runtime_init_only
        .iter()
        .filter(|r| r.actionable == actionable)
        .collect();
    if entries.is_empty() {
        return;
    }
    let title = if actionable {
        "Allowed although only the container runtime's init used them"
    } else {
        "Only the container runtime's init used these, and the profile handles them"
    };
    let _ = writeln!(md, "**{title}** (before the workload's first exec)\n");
    let rows = entries.iter().map(|r| {
        format!(
            "| {} | {} | {} |",
            code(&r.name),
            r.count,
            r.profile.label()
        )
    });
    table(md, "| syscall | calls | profile |", rows, max_rows);
}

/// The privilege drops of each target once, naming the runs that made them.
fn privilege_drops(md: &mut String, report: &Report, max_rows: usize) {
    for drop in &report.information.privilege_drops {
        let _ = writeln!(
            md,
            "**Privilege drop** in {} run(s) of {} ({}): {} syscall(s) only as root: {}. Run as \
             root: {}. Run as another user: {}.\n",
            drop.runs.len(),
            escape(&drop.target),
            code_list(&drop.runs, max_rows),
            drop.root_only.len(),
            code_list(&drop.root_only, max_rows),
            plain_list(&drop.root_executables, max_rows),
            plain_list(&drop.unprivileged_executables, max_rows),
        );
    }
}

/// What failed under `verify`: its failures, then the calls it saw denied.
fn verify_findings(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    let denied = f.verify_denials();
    if f.verify_failed.is_empty() && denied.is_empty() {
        return;
    }
    let _ = writeln!(md, "**Verify FAILED under the profile**\n");
    for failure in &f.verify_failed {
        let _ = writeln!(md, "- {}", escape(&failure.what));
    }
    let rows = denied.iter().map(|d| {
        format!(
            "- denied: `{}` ({}) {} time(s)",
            d.name.as_deref().unwrap_or("?"),
            d.arch.short_name(),
            d.count
        )
    });
    for row in rows.take(max_rows) {
        let _ = writeln!(md, "{row}");
    }
    md.push('\n');
}

fn summary(md: &mut String, report: &Report, max_rows: usize) {
    let s = &report.summary;
    let _ = writeln!(md, "### Summary\n");
    if let Some(note) = &s.verify_note {
        let _ = writeln!(md, "{}\n", escape(note));
    }
    let rows = s.runs.iter().map(|r| {
        format!(
            "| {} | {} | {} | {} s | {} | {} | {} |",
            code(&r.file),
            escape(&r.target),
            r.started_at,
            r.duration_seconds,
            r.calls,
            r.distinct,
            if r.complete { "yes" } else { "**no**" }
        )
    });
    table(
        md,
        "| run | target | started | duration | calls | distinct | complete |",
        rows,
        max_rows,
    );
    let arches: Vec<String> = s
        .per_arch
        .iter()
        .map(|a| {
            format!(
                "{}: {} syscalls, {} calls",
                a.arch.short_name(),
                a.distinct,
                a.calls
            )
        })
        .collect();
    let _ = writeln!(md, "- Per architecture: {}", arches.join("; "));
    let _ = writeln!(
        md,
        "- Profile: default `{}`, architectures {}",
        s.profile.default_action,
        s.profile.architectures.join(", ")
    );
    if s.totals.unnamed_calls > 0 || s.totals.out_of_range > 0 {
        let _ = writeln!(
            md,
            "- Calls without a name: {}, out of range: {}",
            s.totals.unnamed_calls, s.totals.out_of_range
        );
    }
    if let Some(base) = &s.base {
        let _ = writeln!(
            md,
            "- Against {}: added {}; removed {}; changed {}",
            code(&base.base),
            code_list(&base.added, max_rows),
            code_list(&base.removed, max_rows),
            code_list(&base.changed, max_rows)
        );
    }
    md.push('\n');
}

fn categories(md: &mut String, report: &Report) {
    let total = saturating_sum(report.categories.iter().map(|c| c.calls));
    let _ = writeln!(md, "### Calls by category\n");
    let rows = report.categories.iter().map(|c| {
        format!(
            "| {} | {} | {} | {} |",
            escape(&c.title),
            c.syscalls,
            c.calls,
            percent(c.calls, total)
        )
    });
    table(
        md,
        "| category | syscalls | calls | share |",
        rows,
        usize::MAX,
    );
}

fn allowed_table(md: &mut String, report: &Report, max_rows: usize) {
    // Most calls first, so that a cut keeps the rows that matter most.
    let mut rows: Vec<_> = report.syscalls.iter().collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    let _ = writeln!(
        md,
        "<details><summary>All {} allowed syscalls</summary>\n",
        rows.len()
    );
    let mark_root = report.summary.mixed_privileges;
    let lines = rows.iter().map(|r| {
        format!(
            "| {} | {} | {} | {:.2}% | {} | {} | {} |",
            code(&r.name),
            r.category,
            r.count,
            r.share * 100.0,
            escape(&r.programs.summary(PROGRAMS_PER_CELL, mark_root)),
            escape(&r.description),
            escape(&r.reason.text)
        )
    });
    table(
        md,
        "| syscall | category | calls | share | programs | what it does | why allowed |",
        lines,
        max_rows,
    );
    let _ = writeln!(md, "</details>");
}

/// A table with at most `max_rows` rows, saying how many were left out.
fn table(md: &mut String, header: &str, rows: impl Iterator<Item = String>, max_rows: usize) {
    let columns = header.matches('|').count() - 1;
    let _ = writeln!(md, "{header}\n|{}", "---|".repeat(columns));
    let mut left_out = 0;
    for (i, row) in rows.enumerate() {
        if i < max_rows {
            let _ = writeln!(md, "{row}");
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        let _ = writeln!(
            md,
            "\n… and {left_out} more row(s), left out to fit a pull-request comment: see the \
             JSON or HTML report."
        );
    }
    md.push('\n');
}

fn code_list(names: &[String], max: usize) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let mut items: Vec<String> = names.iter().take(max).map(|n| code(n)).collect();
    if names.len() > max {
        items.push(format!("and {} more", names.len() - max));
    }
    items.join(", ")
}

fn plain_list(items: &[String], max: usize) -> String {
    if items.is_empty() {
        return "nothing".into();
    }
    let mut out: Vec<String> = items.iter().take(max).map(|i| escape(i)).collect();
    if items.len() > max {
        out.push(format!("and {} more", items.len() - max));
    }
    out.join(", ")
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

//! The Markdown form of a report, sized for a pull-request comment: findings first, long tables
//! folded in `<details>`, and never more than GitHub's comment limit. When the full report is
//! too long, every table and list is cut to fewer rows (each cut says how many rows are left
//! out) until it fits.

use std::fmt::Write;

use super::Report;
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
    let mut targets: Vec<&str> = Vec::new();
    for run in &s.runs {
        if !targets.contains(&run.target.as_str()) {
            targets.push(&run.target);
        }
    }
    let _ = writeln!(
        md,
        "## agent-audit report: {}\n",
        escape(&targets.join("; "))
    );
    let _ = writeln!(
        md,
        "**{} finding(s)** · {} run(s), {} s, {} calls, {} distinct syscalls · profile {}: \
         {} allowed, {} denied explicitly, {} rules\n",
        report.finding_count(),
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
    if let Some(passed) = s.verify_passed {
        let verdict = if passed { "PASSED" } else { "**FAILED**" };
        let _ = writeln!(
            md,
            "verify under the profile: {verdict}
"
        );
    }
    if let Some(note) = &s.verify_note {
        let _ = writeln!(md, "{}\n", escape(note));
    }
    let _ = writeln!(
        md,
        "convergence: {}
",
        s.convergence.line
    );
    refused(&mut md, report, max_rows);
    findings(&mut md, report, max_rows);
    summary(&mut md, report, max_rows);
    categories(&mut md, report);
    allowed_table(&mut md, report, max_rows);
    let _ = writeln!(md, "\n<sub>{}</sub>", escape(&report.generator));
    md
}

/// First of all: what the profile in force refused while the recordings ran.
fn refused(md: &mut String, report: &Report, max_rows: usize) {
    if report.refused.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Refused under the profile in force
"
    );
    let rows = report.refused.iter().map(|r| {
        let actions: Vec<String> = r
            .actions
            .iter()
            .map(|a| format!("{a:?}").to_lowercase())
            .collect();
        let whose = if r.own_filters {
            " (the workload had filters of its own)"
        } else {
            ""
        };
        let now = if r.allowed_now {
            "allowed"
        } else {
            "**still denied**"
        };
        format!(
            "| {} | {} | {} | {}{whose} | {now} | {} |",
            code(&r.name),
            r.arch.short_name(),
            r.count,
            actions.join(", "),
            escape(&r.programs.summary(PROGRAMS_PER_CELL, false))
        )
    });
    table(
        md,
        "| syscall | arch | refused calls | action | profile under review | programs |",
        rows,
        max_rows,
    );
}

fn findings(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    let _ = writeln!(md, "### Findings\n");
    if report.finding_count() == 0 {
        let _ = writeln!(md, "None.\n");
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
    dangerous_observed(md, report, max_rows);
    denied_but_used(md, report, max_rows);
    arch_gaps(md, report, max_rows);
    runtime_init_only(md, report, max_rows);
    privilege_drops(md, report, max_rows);
    for note in &f.notes {
        let _ = writeln!(md, "- note: {}", escape(note));
    }
    if !f.notes.is_empty() {
        md.push('\n');
    }
}

fn dangerous_observed(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    if f.dangerous_observed.is_empty() {
        return;
    }
    let mark_root = report.summary.mixed_privileges;
    let _ = writeln!(md, "**Dangerous syscalls observed**\n");
    let rows = f.dangerous_observed.iter().map(|d| {
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

fn denied_but_used(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    if f.denied_but_used.is_empty() {
        return;
    }
    let _ = writeln!(md, "**Used by the workload but denied by the profile**\n");
    let rows = f.denied_but_used.iter().map(|d| {
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

fn runtime_init_only(md: &mut String, report: &Report, max_rows: usize) {
    let f = &report.findings;
    if f.runtime_init_only.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Only the container runtime's init used these** (before the workload's first exec)\n"
    );
    let rows = f.runtime_init_only.iter().map(|r| {
        format!(
            "| {} | {} | {} |",
            code(&r.name),
            r.count,
            r.profile.label()
        )
    });
    table(md, "| syscall | calls | profile |", rows, max_rows);
}

fn privilege_drops(md: &mut String, report: &Report, max_rows: usize) {
    for drop in &report.findings.privilege_drops {
        let _ = writeln!(
            md,
            "**Privilege drop in {}** at {}: {} syscall(s) only as root: {}. Run as root: {}. \
             Run as another user: {}.\n",
            code(&drop.file),
            drop.first_unprivileged_call,
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

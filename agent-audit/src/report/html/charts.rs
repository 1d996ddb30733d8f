//! The page's bar charts, as inline SVG: calls per category and the top syscalls.

use std::fmt::Write;

use super::esc;
use crate::report::{CategoryRow, Report, SyscallRow};

/// Bars in the top-syscalls chart.
const TOP_SYSCALLS: usize = 15;
/// One colour per category, in the category table's order; cycled if it ever grows.
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#86bcb6", "#d37295",
];

pub(super) fn charts(h: &mut String, report: &Report) {
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

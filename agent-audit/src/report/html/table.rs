//! The page's building blocks: sortable tables whose cells name their column, and escaping.

use std::fmt::Write;

/// A table cell: escaped HTML and, for numbers, the value to sort by.
pub(super) struct Cell {
    pub(super) html: String,
    pub(super) value: Option<String>,
}

impl Cell {
    pub(super) fn text(s: &str) -> Self {
        Cell {
            html: esc(s),
            value: None,
        }
    }
    /// Text whose backticked parts are code (`verify`, a command).
    pub(super) fn prose(s: &str) -> Self {
        Cell {
            html: code_spans(s),
            value: None,
        }
    }
    pub(super) fn code(s: &str) -> Self {
        Cell {
            html: format!("<code>{}</code>", esc(s)),
            value: None,
        }
    }
    pub(super) fn num(n: u64) -> Self {
        Cell {
            html: n.to_string(),
            value: Some(n.to_string()),
        }
    }
    pub(super) fn num_f(n: f64) -> Self {
        Cell {
            html: n.to_string(),
            value: Some(n.to_string()),
        }
    }
    pub(super) fn tag(class: &str, text: &str) -> Self {
        Cell {
            html: format!("<span class=\"tag {class}\">{}</span>", esc(text)),
            value: None,
        }
    }
}

/// A sortable table; a header ending in `#` is a numeric column.
pub(super) fn table(h: &mut String, id: &str, header: &[&str], rows: &[Vec<Cell>]) {
    table_with_marks(h, id, header, rows, &[]);
}

pub(super) fn table_with_marks(
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
    // Each cell names its column: narrow screens show a row as a list of labelled cells.
    let labels: Vec<String> = header
        .iter()
        .map(|t| esc(t.strip_suffix('#').unwrap_or(t)))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let class = if dangerous.get(i).copied().unwrap_or(false) {
            " class=\"dangerous\""
        } else {
            ""
        };
        let _ = write!(h, "<tr{class}>");
        for (cell, label) in row.iter().zip(&labels) {
            match &cell.value {
                Some(v) => {
                    let _ = write!(
                        h,
                        "<td class=\"num\" data-label=\"{label}\" data-value=\"{}\">{}</td>",
                        esc(v),
                        cell.html
                    );
                }
                None => {
                    let _ = write!(h, "<td data-label=\"{label}\">{}</td>", cell.html);
                }
            }
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</tbody></table>");
}

pub(super) fn code_list(names: &[String]) -> String {
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
pub(super) fn esc(s: &str) -> String {
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

/// Text whose backticked parts become `<code>`, the rest escaped.
pub(super) fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| match i % 2 {
            1 => format!("<code>{}</code>", esc(part)),
            _ => esc(part),
        })
        .collect()
}

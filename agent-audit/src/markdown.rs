//! Quoting text from the inputs (program names, file names, command lines, rule comments,
//! syscall names of hand-written profiles) in GitHub Flavored Markdown, for the report and the
//! rationale. Whatever the text holds, it shows as itself: it cannot add HTML, links or
//! emphasis, end its table cell, or break its line.

/// Text safe as plain Markdown, in a table cell or a list item.
///
/// Markdown punctuation is backslash-escaped (`\` first, so an escape in the input stays
/// literal), HTML-significant characters become entities, and line breaks become spaces.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a code span, backticks included.
///
/// Inside a code span nothing is markup, so only what could end it needs care: the fence is
/// one backtick longer than the longest run in the text (padded with spaces when the text
/// starts or ends with one), `|` is escaped because GFM splits table cells before it reads
/// code spans, and line breaks become spaces.
pub fn code(text: &str) -> String {
    if text.is_empty() {
        return "` `".into();
    }
    let text = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_cannot_add_markup() {
        assert_eq!(escape("<b>X"), "&lt;b&gt;X");
        assert_eq!(escape("a | b"), "a \\| b");
        assert_eq!(escape("\\|"), "\\\\\\|");
        assert_eq!(escape("[x](http://e)"), "\\[x\\](http://e)");
        assert_eq!(escape("*bold* _it_ `c`"), "\\*bold\\* \\_it\\_ \\`c\\`");
        assert_eq!(escape("&lt;"), "&amp;lt;");
        assert_eq!(escape("two\nlines\r"), "two lines ");
        assert_eq!(escape("ls ×3"), "ls ×3");
    }

    #[test]
    fn code_spans_hold_any_text() {
        assert_eq!(code("read"), "`read`");
        assert_eq!(code("<b>X"), "`<b>X`");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("``x"), "``` ``x ```");
        assert_eq!(code("x\ny"), "`x y`");
        assert_eq!(code(""), "` `");
    }
}

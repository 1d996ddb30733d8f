//! Every relative link of the repository's Markdown resolves: `](path)` names a file or
//! directory that exists, and `](#anchor)` / `](page.md#anchor)` a heading of that page, with
//! anchors made as GitHub makes them. The README's reference lives in `docs/`, so a moved
//! section shows up here instead of as a dead link.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (xtask's parent).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Markdown files of the repository, build outputs and hidden directories left out.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks, line by line.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push(line);
        }
    }
    lines
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(page).unwrap();
    prose_lines(&text)
        .into_iter()
        .filter_map(|line| {
            let rest = line.trim_start_matches('#');
            (rest.len() < line.len() && rest.starts_with(' ')).then(|| anchor(rest))
        })
        .collect()
}

/// The targets of the `](…)` links in a page (no spaces inside, as the docs write them).
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            if let Some(end) = rest.find(')') {
                let target = &rest[..end];
                if !target.is_empty() && !target.contains(char::is_whitespace) {
                    targets.push(target.to_string());
                }
            }
        }
    }
    targets
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    let is_url = target.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_lowercase())
    });
    if is_url {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let dest = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(path)
    };
    if !dest.exists() {
        return Some(format!("{target}: no such file"));
    }
    let is_markdown = dest.extension().is_some_and(|e| e == "md");
    let heading_found = fragment.is_empty() || is_markdown && anchors(&dest).contains(fragment);
    (!heading_found).then(|| format!("{target}: no such heading"))
}

#[test]
fn every_relative_markdown_link_resolves() {
    let root = root();
    let mut pages = Vec::new();
    markdown_files(&root, &mut pages);
    assert!(
        pages.iter().any(|p| p.ends_with("docs/commands.md")),
        "the reference pages were not found under {}",
        root.display()
    );
    let mut problems = Vec::new();
    let mut links = 0;
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        for target in link_targets(&text) {
            links += 1;
            if let Some(problem) = broken(page, &target) {
                let shown = page.strip_prefix(&root).unwrap_or(page).display();
                problems.push(format!("{shown}: {problem}"));
            }
        }
    }
    assert!(links > 50, "only {links} links found: the parser is broken");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor("No start-up race: `record --wait`"),
        "no-start-up-race-record---wait"
    );
    assert_eq!(
        anchor("The capability set (`capabilities.json`)"),
        "the-capability-set-capabilitiesjson"
    );
    assert_eq!(anchor("Today's results"), "todays-results");
}

#[test]
fn a_missing_page_or_heading_is_reported() {
    let page = root().join("README.md");
    assert!(broken(&page, "docs/commands.md").is_none());
    assert!(broken(&page, "docs/no-such-page.md").is_some());
    assert!(broken(&page, "#reading-the-verdict").is_none());
    assert!(broken(&page, "#no-such-heading").is_some());
    assert!(broken(&page, "https://example.com/x#y").is_none());
}

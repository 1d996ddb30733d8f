//! `report` end to end: the binary on recorded allowlists (tests/data/allowlists), and the HTML
//! page rendered by headless Chromium, asserting on the DOM after its scripts ran. No root needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, workspace_root};

fn fixtures() -> Vec<PathBuf> {
    let dir = workspace_root().join("tests/data/allowlists");
    vec![
        dir.join("privilege-drop.allowlist.json"),
        dir.join("shell-commands.allowlist.json"),
    ]
}

fn report(out: &Path, format: &str, extra: &[&str]) {
    run_ok(
        Command::new(agent_audit_bin())
            .arg("report")
            .args(fixtures())
            .args(["--format", format, "-o"])
            .arg(out)
            .args(extra),
        Duration::from_secs(60),
    );
}

/// The page's DOM after its scripts ran, as Chromium serialises it.
fn rendered_dom(page: &Path) -> String {
    let mut cmd = Command::new("chromium");
    // --no-sandbox: Chromium refuses to run as root with its sandbox, and the page is ours.
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--dump-dom",
    ])
    .arg(format!("file://{}", page.display()));
    match cmd.output() {
        Err(e) => {
            panic!("cannot run chromium ({e}): `cargo xtask test` installs Debian's chromium")
        }
        Ok(out) => {
            assert!(
                out.status.success(),
                "chromium failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    }
}

/// The `data-value`s of column `col` (0-based) of the table with this id, row by row.
fn column_values(dom: &str, table_id: &str, col: usize) -> Vec<f64> {
    let start = dom
        .find(&format!("<table id=\"{table_id}\""))
        .unwrap_or_else(|| panic!("no table {table_id}"));
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td").nth(col + 1).expect("cell");
            let value = cell.split("data-value=\"").nth(1).expect("numeric cell");
            value[..value.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn report_html_sorts_in_chromium_and_draws_one_bar_per_category() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let json = dir.path().join("report.json");
    report(&html, "html", &[]);
    report(&json, "json", &[]);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let categories = model["categories"].as_array().unwrap();
    let mut counts: Vec<f64> = model["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_f64().unwrap())
        .collect();

    // As loaded: the sort script has armed the tables, rows are in the model's (name) order.
    let dom = rendered_dom(&html);
    assert!(dom.contains("id=\"syscall-table\" class=\"sortable\" data-sortable=\"ready\""));
    assert_eq!(column_values(&dom, "syscall-table", 2), counts);
    let chart = &dom[dom.find("id=\"chart-categories\"").unwrap()..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(chart.matches("<g class=\"bar\"").count(), categories.len());
    for category in categories {
        let key = format!("data-key=\"{}\"", category["id"].as_str().unwrap());
        assert!(chart.contains(&key), "no bar for {key}");
    }

    // Click the "calls" header, as a reader would: most calls first.
    let page = std::fs::read_to_string(&html).unwrap();
    let clicked = page.replace(
        "</body>",
        "<script>document.querySelector('#syscall-table thead th:nth-child(3)').click();</script>\n</body>",
    );
    let clicked_path = dir.path().join("clicked.html");
    std::fs::write(&clicked_path, clicked).unwrap();
    let dom = rendered_dom(&clicked_path);
    counts.sort_by(|a, b| b.partial_cmp(a).unwrap());
    assert_eq!(column_values(&dom, "syscall-table", 2), counts);
    assert!(dom.contains("aria-sort=\"descending\">calls</th>"));
}

#[test]
fn report_is_deterministic_fits_a_comment_and_uses_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.md"), dir.path().join("two.md"));
    report(&one, "md", &[]);
    report(&two, "md", &[]);
    let md = std::fs::read_to_string(&one).unwrap();
    assert_eq!(md, std::fs::read_to_string(&two).unwrap());
    assert!(md.len() <= 65_536);
    assert!(md.contains("**Privilege drop** in 1 run(s)"), "{md}");
    assert!(
        md.contains("`unshare`"),
        "the dangerous call is a finding:\n{md}"
    );

    let bin = agent_audit_bin();
    let missing = run(
        Command::new(&bin).args(["report", "/nonexistent/a.json", "--format", "json"]),
        Duration::from_secs(30),
    );
    missing.assert_code(66);
    let unwritable = run(
        Command::new(&bin).arg("report").args(fixtures()).args([
            "--format",
            "md",
            "-o",
            "/nonexistent/dir/r.md",
        ]),
        Duration::from_secs(30),
    );
    unwritable.assert_code(73);
}

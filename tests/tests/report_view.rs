//! The report as a reviewer sees it. The inputs are a real 3-run `audit --container`
//! of a Debian Squid proxy (tests/data/audits/squid: squid starts as root, drops to `proxy`,
//! refuses a domain outside its allowlist and shuts down; the container drops 3 capabilities,
//! so verify's note carries the long comma-joined capability list). Headless Chromium renders
//! the HTML at 1300 px and at 390 px (a phone): nothing is wider than the window, and the
//! verdict is on the first screen, also when the audit lies in a deep checkout whose long
//! paths the report prints (a CI clone once pushed the phone view 10 px sideways).
//! Screenshots are left in target/report-screenshots/ for people to look at. No root needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::browser::{layout, screenshot};
use agent_audit_tests::process::run_ok;
use agent_audit_tests::{agent_audit_bin, workspace_root};
use serde_json::Value;

/// (width, height) of the windows: a laptop's and a phone's.
const WINDOWS: [(u32, u32); 2] = [(1300, 900), (390, 844)];

fn squid_audit() -> PathBuf {
    workspace_root().join("tests/data/audits/squid")
}

/// A copy of the squid audit under a deep directory, as in a CI checkout: the report names
/// the allowlists by their paths, and a long path must wrap rather than widen the page.
fn squid_audit_in_a_deep_checkout(root: &Path) -> PathBuf {
    let deep = root
        .join("home-runner-work-a-fairly-long-repository-name")
        .join("checkout-0123456789abcdef0123456789abcdef/tests/data/audits/squid");
    std::fs::create_dir_all(&deep).unwrap();
    for entry in std::fs::read_dir(squid_audit()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, deep.join(path.file_name().unwrap())).unwrap();
    }
    deep
}

/// `report` of the squid audit in `dir`, as `audit` wrote it, in `format`.
fn report(out: &Path, format: &str, dir: &Path, verify: &Path) {
    let mut cmd = Command::new(agent_audit_bin());
    cmd.arg("report");
    for k in 1..=3 {
        cmd.arg(dir.join(format!("allowlist-{k}.json")));
    }
    cmd.arg("--profile")
        .arg(dir.join("profile.json"))
        .arg("--verify")
        .arg(verify)
        .args(["--format", format, "-o"])
        .arg(out);
    run_ok(&mut cmd, Duration::from_secs(60));
}

/// The squid audit's verify result with one denial added: a report that asks for a change.
fn failed_verify(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(squid_audit().join("verify.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["passed"] = Value::Bool(false);
    v["denied"].as_array_mut().unwrap().push(serde_json::json!(
        {"arch": "SCMP_ARCH_X86_64", "name": "getrandom", "nr": 318, "count": 2}
    ));
    let path = dir.join("verify-failed.json");
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

#[test]
fn report_html_fits_every_window_and_opens_with_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let audit = squid_audit_in_a_deep_checkout(dir.path());
    let shots = workspace_root().join("target/report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let cases = [
        ("passed", audit.join("verify.json"), "Ready to commit"),
        ("failed", failed_verify(dir.path()), "Not ready to commit"),
    ];
    for (name, verify, verdict) in cases {
        let html = dir.path().join(format!("{name}.html"));
        report(&html, "html", &audit, &verify);
        let page = std::fs::read_to_string(&html).unwrap();
        // The title names the container once, not once per run.
        let title = "agent-audit report: container: findings-report-squid";
        assert!(page.contains(&format!("<title>{title}</title>")));
        assert!(page.contains(&format!("<h1>{title}</h1>")));
        let start = page.find("id=\"verdict\"").expect("a verdict");
        assert!(page[start..].starts_with("id=\"verdict\" class=\"verdict"));
        assert!(page[start..start + 300].contains(verdict), "{name}");
        assert!(page.contains("<details><summary><h2>Information ("));
        for (width, height) in WINDOWS {
            let seen = layout(&html, width, height, "#verdict");
            assert_eq!(seen.inner_width, f64::from(width), "{seen:?}");
            assert!(
                seen.scroll_width <= seen.inner_width,
                "{name} at {width} px scrolls sideways: {seen:?}"
            );
            assert!(
                seen.element_bottom > 0.0 && seen.element_bottom <= seen.inner_height,
                "{name} at {width} px: the verdict is not on the first screen: {seen:?}"
            );
            screenshot(
                &html,
                width,
                height,
                &shots.join(format!("squid-{name}-{width}.png")),
            );
        }
    }
}

#[test]
fn every_format_opens_with_the_verdict_and_counts_only_what_asks_for_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let passed = squid_audit().join("verify.json");
    let (md, json) = (dir.path().join("r.md"), dir.path().join("r.json"));
    report(&md, "md", &squid_audit(), &passed);
    report(&json, "json", &squid_audit(), &passed);

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.len() < 65_536, "{}", md.len());
    let mut paragraphs = md.split("\n\n");
    assert_eq!(
        paragraphs.next().unwrap(),
        "## agent-audit report: container: findings-report-squid"
    );
    let verdict = paragraphs.next().unwrap();
    assert!(
        verdict.starts_with("**Ready to commit: verify PASSED"),
        "{verdict}"
    );
    assert!(md.contains("### Findings (0)"), "{md}");
    assert!(md.contains("--security-opt seccomp="), "{md}");
    assert!(md.contains("localhostProfile: operator/findings-report-squid.json"));
    assert!(md.contains("agent-audit diff --fail-on added"));
    // Squid drops to `proxy` in all 3 runs: one entry, in the folded information.
    let folded = &md[md.find("<details><summary>Information").expect(&md)..];
    let folded = &folded[..folded.find("</details>").unwrap()];
    assert_eq!(folded.matches("**Privilege drop**").count(), 1, "{folded}");
    assert!(folded.contains("in 3 run(s)"), "{folded}");
    assert!(
        folded.contains("allowed (timing-dependent allowance)"),
        "{folded}"
    );

    let text = std::fs::read_to_string(&json).unwrap();
    let at = |key: &str| text.find(&format!("\n  \"{key}\": ")).expect(key);
    assert!(at("generator") < at("verdict") && at("verdict") < at("summary"));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["verdict"]["status"], "ready",
        "{:#}",
        report["verdict"]
    );
    assert_eq!(report["verdict"]["findings"], 0);
    // report/v1 only grows: the per-run entries are still there.
    assert_eq!(
        report["findings"]["privilege_drops"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        report["information"]["privilege_drops"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

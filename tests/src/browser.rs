//! A page as people see it: Debian's headless Chromium (`cargo xtask setup` installs it) loads
//! a file at a given window size, for a screenshot or for the layout a small script measures.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::run;

/// Chromium gets this long per page (a cold start on a loaded 2-core machine takes seconds).
const TIMEOUT: Duration = Duration::from_secs(120);

/// What the page's layout measured, in CSS pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// `document.documentElement.scrollWidth`: wider than the window means horizontal scroll.
    pub scroll_width: f64,
    /// `innerWidth`.
    pub inner_width: f64,
    /// `innerHeight`.
    pub inner_height: f64,
    /// The bottom edge of the element measured (`getBoundingClientRect().bottom`, unscrolled).
    pub element_bottom: f64,
    /// The element reaching furthest right (tag, class, right edge, start of its text): what
    /// to look at when the page scrolls sideways, e.g. with another machine's fonts.
    pub widest: String,
}

fn chromium(width: u32, height: u32) -> Command {
    let mut cmd = Command::new("chromium");
    // --no-sandbox: Chromium refuses to run as root with its sandbox, and the pages are ours.
    // --hide-scrollbars: the window's width is the page's, as on a phone.
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--window-size={width},{height}"));
    cmd
}

/// A screenshot of the window's first screen at `width` × `height`, as PNG.
pub fn screenshot(page: &Path, width: u32, height: u32, png: &Path) {
    let _ = std::fs::remove_file(png);
    let done = run(
        chromium(width, height)
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display())),
        TIMEOUT,
    );
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        done.code() == 0 && size > 1000,
        "chromium wrote no screenshot of {} ({size} bytes; `cargo xtask setup` installs Debian's \
         chromium):\n{}",
        page.display(),
        done.stderr
    );
}

/// The layout of `page` in a `width` × `height` viewport, with `selector`'s element measured.
///
/// Chromium's `--dump-dom` gives the page a window at least 500 px wide whatever
/// `--window-size` says, so the page is loaded into an `<iframe srcdoc>` of exactly that size
/// (a srcdoc frame shares its parent's origin), with a script appended that writes the numbers
/// into the parent's DOM, which Chromium dumps.
pub fn layout(page: &Path, width: u32, height: u32, selector: &str) -> Layout {
    const PROBE: &str = "<script>(function () {\n\
        var e = document.querySelector(SELECTOR);\n\
        var r = e ? e.getBoundingClientRect().bottom : -1;\n\
        var w = null, right = -1;\n\
        document.querySelectorAll('body *').forEach(function (x) {\n\
            var b = x.getBoundingClientRect().right;\n\
            if (b > right) { right = b; w = x; }\n\
        });\n\
        var said = w ? w.tagName + '.' + w.className + ' ' + right + ' ' + \
            JSON.stringify(w.textContent.slice(0, 80)) : '';\n\
        var p = parent.document.createElement('pre');\n\
        p.textContent = 'LAY' + 'OUT= ' + document.documentElement.scrollWidth + ' ' + \
        innerWidth + ' ' + innerHeight + ' ' + r + ' =WIDEST= ' + said + ' =END';\n\
        parent.document.body.appendChild(p);\n\
        })();</script>\n</body>";
    let html = std::fs::read_to_string(page).unwrap();
    let selector = serde_json::to_string(selector).unwrap();
    let probed = html.replace("</body>", &PROBE.replace("SELECTOR", &selector));
    let srcdoc = probed.replace('&', "&amp;").replace('"', "&quot;");
    let frame = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\"><iframe width=\"{width}\" \
         height=\"{height}\" style=\"border:0;display:block\" srcdoc=\"{srcdoc}\"></iframe>\
         </body></html>"
    );
    let copy = page.with_extension(format!("frame-{width}.html"));
    std::fs::write(&copy, frame).unwrap();
    let done = run(
        chromium(width.max(800), height + 100)
            .arg("--dump-dom")
            .arg(format!("file://{}", copy.display())),
        TIMEOUT,
    );
    let _ = std::fs::remove_file(&copy);
    let measured = done
        .stdout
        // The script's own text is in the dump too: the marker is whole only in its output.
        .split("LAYOUT= ")
        .nth(1)
        .and_then(|rest| rest.split(" =END").next())
        .unwrap_or_else(|| {
            panic!(
                "no layout in chromium's DOM (`cargo xtask setup` installs Debian's chromium):\n{}",
                done.stderr
            )
        });
    let (numbers, widest) = measured.split_once(" =WIDEST= ").unwrap_or((measured, ""));
    let numbers: Vec<f64> = numbers
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    Layout {
        scroll_width: numbers[0],
        inner_width: numbers[1],
        inner_height: numbers[2],
        element_bottom: numbers[3],
        widest: widest
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    }
}

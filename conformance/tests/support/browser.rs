//! Headless Chromium for the HTML tests (`reports.rs`, `peers_matrix.rs`): find the browser,
//! load a page from disk with a bounded wait, and return the DOM after its scripts ran plus
//! every console message. Included with `#[path]`, so it is not a test target of its own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set by `scripts/test`, which installs Chromium: a missing browser is then a failure.
pub const REQUIRE_TEST_TOOLS: &str = "REQUIRE_TEST_TOOLS";

pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"]
                .into_iter()
                .map(move |b| dir.join(b))
        })
        .find(|p| p.is_file())
}

/// What headless Chromium made of a page: the DOM after load and the console messages.
pub struct Loaded {
    pub dom: String,
    pub console: Vec<String>,
}

impl Loaded {
    /// The checks every page of the harness must pass: no console message, and its script ran
    /// to its end (it sets `data-ready="1"` last).
    pub fn assert_clean(&self, page: &Path) {
        assert!(
            self.console.is_empty(),
            "console messages on {}: {:?}",
            page.display(),
            self.console
        );
        assert!(
            self.dom.contains("data-ready=\"1\""),
            "the page's script did not run to its end on {}",
            page.display()
        );
    }
}

/// Longest a page load may take.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

pub fn open_in_chromium(browser: &Path, page: &Path) -> Loaded {
    let work = tempfile::tempdir().unwrap();
    let dom_file = work.path().join("dom.html");
    let log_file = work.path().join("stderr.log");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.path().join("profile").display()
        ))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .expect("start chromium");
    // Bounded: the browser exits after --dump-dom; a hung one is killed.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish loading {} within {BROWSER_DEADLINE:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed on {}: {status}\n{log}",
        page.display()
    );
    Loaded {
        dom: std::fs::read_to_string(&dom_file).unwrap(),
        // Chromium logs every console message (errors and uncaught exceptions included)
        // as `…:CONSOLE…] "message", source: …`.
        console: log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    }
}

/// Every `href="#x"` has an element with `id="x"`.
pub fn dangling_links(dom: &str) -> Vec<String> {
    // Recorded answers (inside <pre>) may themselves be HTML with `href="#…"` as text (e.g.
    // /docs/errors): only the page's own markup counts.
    let mut markup = String::with_capacity(dom.len());
    let mut rest = dom;
    while let Some(i) = rest.find("<pre") {
        markup.push_str(&rest[..i]);
        rest = rest[i..].find("</pre>").map_or("", |j| &rest[i + j..]);
    }
    markup.push_str(rest);
    let dom = markup.as_str();
    let ids: std::collections::HashSet<&str> = dom
        .split("id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    dom.split("href=\"#")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|a| !ids.contains(a))
        .map(str::to_owned)
        .collect()
}

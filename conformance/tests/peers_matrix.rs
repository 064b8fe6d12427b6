//! The matrix of the real peers (issue 13): `scripts/peers-conformance` records the embedded
//! reference gateway, LiteLLM and Portkey under the `openai` profile into one history and
//! writes `reports/peers/matrix.html`; this check opens that page in headless Chromium and
//! asserts it loads without console messages, lists every code of the gateway's catalog (the
//! one source of truth, `gateway::catalog::ENTRIES`) as a row, and has the three targets as
//! `openai` columns with grades in them.
//!
//! It needs the peers' data, so it is `#[ignore]`d in `cargo test --workspace` (which runs
//! before the peers do) and run by `scripts/peers-conformance` with `--ignored`. Without the
//! page it fails when `PEERS_MATRIX` names it, or under `CI` / `REQUIRE_TEST_TOOLS`; in a
//! plain local run it prints one line saying why it cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

#[path = "support/browser.rs"]
mod browser;
use browser::{chromium, dangling_links, open_in_chromium, REQUIRE_TEST_TOOLS};

/// The page to check (default `reports/peers/matrix.html` of the workspace); when set, the
/// page is required.
const PEERS_MATRIX: &str = "PEERS_MATRIX";
/// The peers whose target files name the columns (default `litellm portkey`, as
/// `PEERS_CONFORMANCE_ONLY` of the script).
const PEERS_MATRIX_PEERS: &str = "PEERS_MATRIX_PEERS";
/// The profile the three targets share.
const PROFILE: &str = "openai";

fn set(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Is a missing input a failure here? Yes when the script asked for this page, or in CI.
fn required() -> bool {
    set(PEERS_MATRIX).is_some() || set("CI").is_some() || set(REQUIRE_TEST_TOOLS).is_some()
}

/// Fails when required, else one line on stderr (past the harness's capture).
fn cannot_run(why: &str) {
    assert!(!required(), "peers matrix: {why}");
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "peers matrix: SKIPPED, {why} (scripts/peers-conformance writes and checks it)"
    );
}

/// The column names: the embedded gateway's, then each peer's target file `name:`.
fn expected_targets() -> Vec<String> {
    let root = conformance::runner::workspace_dir();
    let peers = set(PEERS_MATRIX_PEERS).unwrap_or_else(|| "litellm portkey".into());
    let mut names = vec![conformance::embedded::NAME.to_owned()];
    for peer in peers.split_whitespace() {
        let file = root
            .join("conformance/targets")
            .join(format!("{peer}.yaml"));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let yaml: serde_norway::Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
        let name = yaml
            .get("name")
            .and_then(serde_norway::Value::as_str)
            .unwrap_or_else(|| panic!("{} has no `name:` (the matrix column)", file.display()));
        names.push(name.to_owned());
    }
    names
}

/// A matrix column as rendered: target, profile.
#[derive(Debug)]
struct Column {
    target: String,
    profile: String,
}

/// The `#matrix` table of the DOM: its columns, and per row key the grade class of each
/// cell (`conformant`, …, `none` for a cell no scenario counts in).
fn matrix_table(dom: &str) -> (Vec<Column>, BTreeMap<String, Vec<String>>) {
    let start = dom.find("<table id=\"matrix\">").expect("no #matrix table");
    let table = &dom[start..];
    let table = &table[..table.find("</table>").expect("#matrix is not closed")];
    let (head, body) = table.split_once("</thead>").expect("#matrix has no thead");
    let columns = head
        .split("<th title=\"")
        .skip(1)
        .map(|th| {
            let target = th.split('"').next().unwrap_or_default().to_owned();
            // `<span class="muted">openai · run 3</span>`
            let profile = th
                .split_once("<span class=\"muted\">")
                .and_then(|(_, s)| s.split(" · ").next())
                .unwrap_or_default()
                .to_owned();
            Column { target, profile }
        })
        .collect();
    let rows = body
        .split("<tr ")
        .skip(1)
        .filter_map(|tr| {
            let key = tr
                .split_once("data-row=\"")?
                .1
                .split('"')
                .next()?
                .to_owned();
            let cells = tr
                .split("<td class=\"cell g-")
                .skip(1)
                .filter_map(|td| td.split('"').next())
                .map(str::to_owned)
                .collect();
            Some((key, cells))
        })
        .collect();
    (columns, rows)
}

#[test]
#[ignore = "needs the peers' runs: scripts/peers-conformance runs it with --ignored"]
fn peers_matrix_opens_in_headless_chromium_with_every_catalog_code_and_the_three_targets() {
    let page = set(PEERS_MATRIX).map_or_else(
        || conformance::runner::workspace_dir().join("reports/peers/matrix.html"),
        PathBuf::from,
    );
    if !page.is_file() {
        cannot_run(&format!("no {}: the peers have not run", page.display()));
        return;
    }
    let Some(browser) = chromium() else {
        cannot_run("chromium is not on PATH: apt-get install chromium, or set CHROMIUM");
        return;
    };
    let loaded = open_in_chromium(&browser, &page);
    loaded.assert_clean(&page);
    let dangling = dangling_links(&loaded.dom);
    assert!(dangling.is_empty(), "links to nothing: {dangling:?}");

    let (columns, rows) = matrix_table(&loaded.dom);
    let catalog: Vec<&str> = gateway::catalog::ENTRIES.iter().map(|e| e.code).collect();
    assert!(catalog.len() > 20, "{catalog:?}");
    let missing: Vec<&&str> = catalog.iter().filter(|c| !rows.contains_key(**c)).collect();
    assert!(
        missing.is_empty(),
        "{} lacks catalog rows {missing:?}",
        page.display()
    );
    for (key, cells) in &rows {
        assert_eq!(
            cells.len(),
            columns.len(),
            "row {key}: {} cells for {} columns",
            cells.len(),
            columns.len()
        );
    }
    let graded = ["conformant", "non-strict", "failed"];
    for name in expected_targets() {
        let i = columns
            .iter()
            .position(|c| c.target == name && c.profile == PROFILE)
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` ({PROFILE}) column in {}: {columns:?}",
                    page.display()
                )
            });
        // The target ran scenarios: some of its cells carry a grade of a run scenario.
        let ran = rows
            .values()
            .filter(|cells| graded.contains(&cells[i].as_str()))
            .count();
        assert!(ran > 0, "the `{name}` column has no graded cell");
        // And every catalog code row has a grade or n/a for it (a code its profile does not
        // claim is not-applicable, or `none` where no scenario counts in the row).
        for code in &catalog {
            let g = &rows[*code][i];
            assert!(
                graded.contains(&g.as_str())
                    || ["not-applicable", "skipped", "none"].contains(&g.as_str()),
                "`{name}` / {code}: unknown cell class g-{g}"
            );
        }
        println!("peers matrix: column `{name}` ({PROFILE}): {ran} graded row(s)");
    }
    println!(
        "peers matrix: {} opens in headless Chromium: {} rows ({} catalog codes), {} columns, no console messages",
        page.display(),
        rows.len(),
        catalog.len(),
        columns.len()
    );
}

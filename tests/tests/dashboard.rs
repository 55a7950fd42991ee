//! The web dashboard (`/ui`) in a real browser: Debian's Chromium, headless, driven by
//! puppeteer-core (`tests/browser/dashboard.mjs`) against the whole gateway: real Envoy with
//! the built filter, the control plane, the mock provider. The script logs in, creates a
//! budget through the pages, sends governed calls through Envoy, and checks what each page
//! shows; a console error or a failed request on any page fails it. A second run goes through
//! the editing and monitoring pages (`tests/browser/pages.mjs`) and audits every page's
//! accessibility with axe-core, the keyboard, both themes and a phone's width
//! (`tests/browser/accessibility.mjs`). Screenshots of every page go to
//! `<target dir>/dashboard-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;

use tollgate_e2e::control_plane::ADMIN_TOKEN;
use tollgate_e2e::paths;
use tollgate_e2e::stack::{Stack, StackOptions, StoreKind};

/// The Chromium the tests drive: `$TOLLGATE_CHROMIUM`, else Debian's (scripts/setup.sh
/// installs the `chromium` package). Missing is a failure, never a skip.
fn chromium() -> PathBuf {
    let path = std::env::var_os("TOLLGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: run scripts/setup.sh (it installs Debian's chromium)",
        path.display()
    );
    path
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace_root().join("target"));
    target.join("dashboard-screenshots")
}

/// Runs `tests/browser/<script>` with node against `stack`; its output is shown on failure.
async fn run_browser_script(stack: &Stack, script: &str) {
    let browser_dir = paths::workspace_root().join("tests").join("browser");
    for package in ["puppeteer-core", "axe-core"] {
        assert!(
            browser_dir.join("node_modules").join(package).is_dir(),
            "no {package} in {}: run scripts/setup.sh (npm ci there)",
            browser_dir.display()
        );
    }
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join(script))
        .current_dir(&browser_dir)
        .env("TOLLGATE_CHROMIUM", chromium())
        .env("TOLLGATE_CP_URL", stack.control_plane.url())
        .env("TOLLGATE_GATEWAY_URL", stack.envoy.url())
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOLLGATE_SCREENSHOTS", &shots)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\nenvoy log:\n{}",
        out.status,
        stack.envoy.log()
    );
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_logs_in_creates_a_budget_and_sees_governed_calls_on_every_page() {
    let stack = Stack::start(StackOptions {
        store: StoreKind::Memory,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    run_browser_script(&stack, "dashboard.mjs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_budgets_alerts_anomalies_and_invoices_work_in_the_browser_and_every_page_passes_the_accessibility_audit()
 {
    let stack = Stack::start(StackOptions {
        store: StoreKind::Memory,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    run_browser_script(&stack, "pages.mjs").await;
    run_browser_script(&stack, "accessibility.mjs").await;
}

//! Marks, when the tests are built, which of their prerequisites this machine lacks, so
//! that those tests show as skipped (`#[ignore]` with the reason) rather than pass
//! without running. CI (`.ci/run`) installs them and sets `*_TESTS=required` first.
//! A prerequisite installed later is seen at the next build of this package (or at once
//! by setting CHROMIUM/CHROMEDRIVER or TRACKER_TEST_POSTGRES_URL, which rebuild it).

use std::path::Path;

fn main() {
    for var in
        ["CHROMIUM", "CHROMEDRIVER", "TRACKER_BROWSER_TESTS", "TRACKER_TEST_POSTGRES_URL", "TRACKER_POSTGRES_TESTS"]
    {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(browser_missing)");
    println!("cargo::rustc-check-cfg=cfg(postgres_missing)");
    let required = |var: &str| std::env::var(var).as_deref() == Ok("required");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let browser = Path::new(&chromium).exists() && Path::new(&chromedriver).exists();
    if !browser && !required("TRACKER_BROWSER_TESTS") {
        println!("cargo::rustc-cfg=browser_missing");
    }
    if std::env::var_os("TRACKER_TEST_POSTGRES_URL").is_none() && !required("TRACKER_POSTGRES_TESTS") {
        println!("cargo::rustc-cfg=postgres_missing");
    }
}

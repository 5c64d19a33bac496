//! Marks, when the tests are built, which test servers this machine was not given, so
//! that their conformance tests show as skipped (`#[ignore]` with the reason) rather than
//! pass without running. CI (`.ci/run`) starts PostgreSQL and sets its URL first.

fn main() {
    for var in ["KURRENTDB_URL", "TRACKER_TEST_POSTGRES_URL", "TRACKER_POSTGRES_TESTS"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(kurrentdb_missing)");
    println!("cargo::rustc-check-cfg=cfg(postgres_missing)");
    if std::env::var_os("KURRENTDB_URL").is_none() {
        println!("cargo::rustc-cfg=kurrentdb_missing");
    }
    let required = std::env::var("TRACKER_POSTGRES_TESTS").as_deref() == Ok("required");
    if std::env::var_os("TRACKER_TEST_POSTGRES_URL").is_none() && !required {
        println!("cargo::rustc-cfg=postgres_missing");
    }
}

//! Marks, when the tests are built, that no PostgreSQL test server was given, so that the
//! PostgreSQL migration's test shows as skipped (`#[ignore]` with the reason) rather than
//! pass without running. CI (`.ci/run`) starts PostgreSQL and sets its URL first.

fn main() {
    for var in ["TRACKER_TEST_POSTGRES_URL", "TRACKER_POSTGRES_TESTS"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(postgres_missing)");
    let required = std::env::var("TRACKER_POSTGRES_TESTS").as_deref() == Ok("required");
    if std::env::var_os("TRACKER_TEST_POSTGRES_URL").is_none() && !required {
        println!("cargo::rustc-cfg=postgres_missing");
    }
}

//! `tracker bench`: performance measured on this machine, never in tests; each figure
//! with its ratio to a baseline measured in the same run (the fsync floor, the store's
//! raw appends, `/health`). Links what only the benchmarks need (an HTTP client,
//! temporary directories), so the server does not. Never a correctness check: the tests
//! are those.

pub mod attack;
pub mod dashboard;
pub mod directory;
pub mod import;
pub mod log;
pub mod replicas;
pub mod workload;
pub mod write;

//! Conformance harness: runs the Gherkin features of `features/` against the embedded
//! reference gateway (default) or any gateway URL, and writes JUnit, cucumber JSON and a
//! per-code table to `reports/conformance/`.
//!
//! Layout:
//! - [`runner`]: cucumber set-up (no CLI parsing, skips with reasons, zero retries), reports.
//! - [`target`]: the gateway under test and its roles; [`embedded`] boots the reference
//!   gateway and mocks in-process; [`mock`] scripts the mock upstreams.
//! - [`world`]: the per-scenario World (requests, scripts); [`checks`]: its assertions.
//! - `steps/`: step definitions by domain, each a call into the World.
//! - [`features`]: parsing features and finding the codes they assert; [`report`]: reading
//!   results back and the per-code table; [`schemas`]: `features/schemas/`.
//! - [`fuzz`]: property-based malformed bodies.
//! - [`profile`]: contract profiles (condition → expected answer) and grading;
//!   [`target_file`]: `CONFORMANCE_TARGET` files; [`expectations`]: per-peer expected grades.
//! - After a run: [`transcript`] (each scenario's HTTP exchanges, bounded, credentials
//!   redacted), [`history`] (runs in SQLite, what changed, what is flaky), [`html`]
//!   (`report.html`, `matrix.html`), tied together by [`publish`]; [`progress`] prints
//!   scenarios done / total on a terminal.
//!
//! Invariant: the harness never depends on gateway internals beyond starting it; everything
//! it checks, it checks over HTTP, so the same code runs against any deployment.

pub mod checks;
pub mod embedded;
pub mod expectations;
pub mod features;
pub mod fuzz;
pub mod history;
pub mod html;
pub mod mock;
pub mod profile;
pub mod progress;
pub mod publish;
pub mod report;
pub mod runner;
pub mod schemas;
pub mod sse;
mod steps;
pub mod target;
pub mod target_file;
pub mod text;
pub mod transcript;
pub mod world;

pub use runner::{main_exit_code, print_report, run, target_from_env, RunOptions, RunReport};
pub use target::Target;
pub use world::GatewayWorld;

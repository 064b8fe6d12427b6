//! The conformance suite (`harness = false`): every feature against the embedded reference
//! gateway, or against `GATEWAY_URL`. Process arguments are ignored on purpose: `cargo test
//! conformance` hands `conformance` to every test binary.

fn main() {
    std::process::exit(conformance::main_exit_code());
}

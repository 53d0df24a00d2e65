//! Top level: parse, run, map errors to messages and exit codes (STUB).
use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}

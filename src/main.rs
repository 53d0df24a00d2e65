//! The `woci` binary: everything lives in the library; see [`woci::app`].

fn main() -> std::process::ExitCode {
    woci::app::main()
}

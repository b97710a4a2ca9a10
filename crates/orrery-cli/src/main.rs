//! The `orrery` binary. Everything lives in the `orrery_cli` library so
//! tests can call it; this only hands over the arguments and exits.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(orrery_cli::main_with_args(std::env::args_os()))
}

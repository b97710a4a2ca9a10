//! The `orrery` binary. Everything lives in the `orrery_cli` library so
//! tests can call it; this only picks the allocator, hands over the
//! arguments and exits.

/// mimalloc: measurably faster than the system allocator on the value
/// codecs (`cargo bench -p orrery-types`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(orrery_cli::main_with_args(std::env::args_os()))
}

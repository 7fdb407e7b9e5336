//! The `berth` binary: `berth daemon`, `berth network ...`, `berth sandbox ...`.

fn main() -> std::process::ExitCode {
    berth_cli::main_entry()
}

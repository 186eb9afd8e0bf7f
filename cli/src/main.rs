//! `kubectl-ferrolb`: on the PATH, `kubectl ferrolb explain …` runs it.

fn main() -> std::process::ExitCode {
    ferrolb_cli::cmd::main_with(std::env::args_os())
}

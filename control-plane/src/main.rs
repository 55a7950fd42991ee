//! `tollgate`: the control-plane service (`tollgate serve`) and its admin CLI.

fn main() -> std::process::ExitCode {
    tollgate_control_plane::cli::main()
}

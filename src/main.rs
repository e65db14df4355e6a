//! `ctl`: Flotilla's single binary. All the work is in the library's `cli`.

fn main() -> std::process::ExitCode {
    flotilla::cli::main()
}

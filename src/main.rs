//! `ctl`: Flotilla's single binary. All the work is in the library's `cli`.

/// mimalloc instead of glibc's malloc: the masters allocate and free many
/// small JSON values per request, and glibc's allocator was a quarter of a
/// busy leader's CPU time in profiles of `ctl bench scheduler`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flotilla::cli::main()
}

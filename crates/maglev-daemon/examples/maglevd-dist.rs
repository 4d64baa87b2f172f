//! Writes maglevd's man page under the directory given (run by `cargo
//! xtask dist`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| "target/dist".into(), std::path::PathBuf::from);
    println!("{}", maglev_daemon::args::write_man(&dir)?.display());
    Ok(())
}

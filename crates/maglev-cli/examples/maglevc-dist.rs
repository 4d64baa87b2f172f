//! Writes maglevc's man page and shell completions under the directory
//! given (run by `cargo xtask dist`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| "target/dist".into(), std::path::PathBuf::from);
    for f in maglev_cli::dist::write_all(&dir)? {
        println!("{}", f.display());
    }
    Ok(())
}

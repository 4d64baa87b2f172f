//! Writes `man/maglevd-frontend.8` under the directory given (run by
//! `cargo xtask dist`).

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| "target/dist".into(), std::path::PathBuf::from);
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let path = man.join("maglevd-frontend.8");
    std::fs::write(&path, maglev_web::args::man_page()?)?;
    println!("{}", path.display());
    Ok(())
}

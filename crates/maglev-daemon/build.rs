//! Stamps the crate with its git commit and build date for `--version`.

fn main() {
    maglev_buildinfo::emit();
}

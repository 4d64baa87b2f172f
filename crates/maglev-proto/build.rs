//! Generates the tonic/prost code for `proto/maglev.proto` with a vendored
//! protoc, so a fresh machine needs nothing installed.

fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    std::env::set_var("PROTOC", protoc);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("maglev_descriptor.bin"))
        .compile_protos(&["proto/maglev.proto"], &["proto"])
        .expect("compile maglev.proto");
    println!("cargo:rerun-if-changed=proto/maglev.proto");
}

//! Compiles `proto/orrery/v1/types.proto` (the `TypeSchema` and `Value`
//! messages) with prost, using the vendored protoc so no system protoc is
//! needed. The other protocol files are compiled by `orrery-proto`, which
//! reuses these messages.

fn main() -> std::io::Result<()> {
    // Read at run time: a build script binary may be reused for another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let proto_root = format!("{manifest_dir}/../../proto");
    let types_proto = format!("{proto_root}/orrery/v1/types.proto");
    println!("cargo:rerun-if-changed={types_proto}");
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
    // Build scripts are single-threaded; prost-build reads PROTOC from the environment.
    std::env::set_var("PROTOC", protoc);
    prost_build::Config::new().compile_protos(&[types_proto], &[proto_root])
}

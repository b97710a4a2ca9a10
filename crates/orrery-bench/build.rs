//! Compiles the minimal etcd v3 KV protocol (`proto/etcd/kv.proto`: `Put`
//! and `Range` only) with tonic and prost, using the vendored protoc so no
//! system protoc is needed. Only the client is generated.

fn main() -> std::io::Result<()> {
    // Read at run time: a build script binary may be reused for another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let proto_root = format!("{manifest_dir}/proto");
    println!("cargo:rerun-if-changed={proto_root}");
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
    // Build scripts are single-threaded; prost-build reads PROTOC from the environment.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[format!("{proto_root}/etcd/kv.proto")], &[proto_root])
}

//! Compiles the API in `proto/` into Rust, and writes the descriptor set that server reflection
//! serves. protox parses the protos in Rust, so no system `protoc` is needed.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/numbers/v1/number_management.proto",
        "proto/numbers/v1/operator_connect.proto",
    ];
    let descriptors = protox::compile(protos, ["proto"])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("numbers_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    // Type names (`prost::Name`) let the API find each request's descriptor for its limits.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // google.rpc.Status (a bulk item's result) is tonic-types' own.
    config.extern_path(".google.rpc", "::tonic_types::pb");
    tonic_prost_build::configure().compile_fds_with_config(descriptors, config)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

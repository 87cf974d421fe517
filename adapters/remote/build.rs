//! Compiles the provider adapter protocol (`proto/numbers/adapter/v1`) into Rust: the client
//! that `RemoteProvider` speaks and the server a carrier's Rust adapter (or the simulator)
//! implements. protox parses the protos in Rust, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let descriptors = protox::compile(["numbers/adapter/v1/adapter.proto"], [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    println!(
        "cargo:rerun-if-changed={}",
        root.join("numbers/adapter").display()
    );
    Ok(())
}

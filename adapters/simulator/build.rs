//! Compiles the simulator's control protocol (`proto/numbers/simulator/v1`) into Rust, client
//! and server. protox parses the protos in Rust, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let descriptors = protox::compile(["numbers/simulator/v1/control.proto"], [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    println!(
        "cargo:rerun-if-changed={}",
        root.join("numbers/simulator").display()
    );
    Ok(())
}

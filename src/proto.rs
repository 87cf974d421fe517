//! The generated gRPC code of `proto/`, and the descriptor set that reflection serves.

/// The public API, package `numbers.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("numbers.v1");
}

/// Every file of the API, encoded, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("numbers_descriptor");

/// The API's descriptors, decoded once: for the limits of each request and the command line's
/// JSON output.
pub fn descriptors() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::LazyLock<prost_reflect::DescriptorPool> =
        std::sync::LazyLock::new(|| {
            prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
                .expect("the API's own descriptor set decodes")
        });
    &POOL
}

/// A gRPC code as the protocol spells it: `ALREADY_EXISTS`.
pub fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

//! The generated gRPC code of `proto/`, and the descriptor set that reflection serves.

/// The public API, package `numbers.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("numbers.v1");
}

/// Every file of the API, encoded, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("numbers_descriptor");

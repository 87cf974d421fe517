//! The remote provider adapter: a carrier that ships its adapter as its own process, in any
//! language, speaking the gRPC protocol of `proto/numbers/adapter/v1/adapter.proto`.
//!
//! The protocol mirrors the [`Provider`](numbers_provider::Provider) trait call for call, so a
//! remote carrier behaves to the service exactly like an in-process adapter. What the network
//! adds, this crate absorbs in one place: [`RemoteProvider`] puts a deadline on every call,
//! retries only what a retry can fix, and stops calling a carrier that keeps failing (a circuit
//! breaker), so that a dead carrier never holds up the service. [`AdapterService`] is the other
//! side: it serves any [`Provider`](numbers_provider::Provider) over the protocol, for carriers
//! that write their adapter in Rust, and for the operator simulator.
//!
//! Refusals and faults travel as gRPC statuses; [`status_from_error`] and
//! [`error_from_status`] are the one mapping between them, used by both sides.

mod breaker;
mod client;
mod convert;
mod server;
mod status;

pub use client::{ClientTls, InvalidEndpoint, RemoteProvider, RemoteSettings};
pub use convert::{Malformed, duration_from_proto, duration_to_proto};
pub use server::AdapterService;
pub use status::{OUT_OF_STOCK, error_from_status, status_from_error};

/// The gauge of each remote provider's circuit breaker, labelled `provider`: 0 closed, 1
/// half-open (a trial call out), 2 open (calls fail fast).
pub const CIRCUIT_STATE_METRIC: &str = "numbers_adapter_circuit_state";

/// The generated code of the protocol, package `numbers.adapter.v1`: messages, the
/// `provider_adapter_client` and the `provider_adapter_server`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("numbers.adapter.v1");
}

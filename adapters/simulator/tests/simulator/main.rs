//! The simulator, driven through `RemoteProvider` as the service drives a remote carrier: the
//! provider conformance kit, the faults a network brings (and how the client absorbs them), and
//! the carrier's memory of what it provisioned, and what it says it holds.

mod conformance;
mod helpers;
mod listing;
mod provisioning;
mod resilience;

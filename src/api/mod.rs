//! The gRPC edge: authentication, request conversion and validation, and the mapping of errors
//! to statuses. Handlers are thin; the rules live in the domain and the service.

mod access;
mod auth;
mod convert;
mod mutation;
mod number_management;
mod operator_connect;
mod pagination;
mod status;

pub use access::{ROLE_MATRIX, allowed_roles};
pub use auth::Guarded;
pub use number_management::NumberManagementApi;
pub use operator_connect::OperatorConnectApi;
pub use status::ERROR_DOMAIN;

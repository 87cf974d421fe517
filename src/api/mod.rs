//! The gRPC edge: authentication, request conversion and validation, and the mapping of errors
//! to statuses. Handlers are thin; the rules live in the domain and the service.

mod access;
mod auth;
mod bulk;
mod changes;
mod convert;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod mutation;
mod number_management;
mod operator_connect;
mod pagination;
mod rate;
mod status;

pub use access::{ROLE_MATRIX, allowed_roles};
pub use auth::Guarded;
pub use limits::{MAX_CHARS, MAX_ITEMS, MAX_MESSAGE_BYTES};
pub use number_management::NumberManagementApi;
pub use operator_connect::OperatorConnectApi;
pub use rate::TenantRate;
pub use status::ERROR_DOMAIN;

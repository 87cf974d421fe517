//! numbers: a multi-tenant gRPC service that manages the telephone numbers of an organisation's
//! users: getting numbers into the tenant, assigning them, changing and removing them, and the
//! emergency location of each.
//!
//! A request flows one way: [`api`] (authenticate, validate, convert) -> [`service`] (load,
//! apply the [`domain`]'s rules, write) -> [`store`] (one transaction). See
//! `docs/architecture.md` for the map.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod proto;
pub mod routing;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;

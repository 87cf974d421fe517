//! The integration tests: one test binary (faster to link), one module per area.
//!
//! Every test runs against the real server on a socket, or, for the store conformance suite,
//! against the real databases; each area runs on both SQLite and PostgreSQL.

#![allow(unreachable_pub)]

mod calls;
mod helpers;

mod acquisition;
mod admin_cli;
mod assignment;
mod audit;
mod auth;
mod blocks;
mod bulk;
mod changes;
mod cli;
mod configuration;
mod direct_routing;
mod emergency;
mod export;
mod fuzz_corpora;
mod health;
mod isolation;
mod limits;
mod locations;
mod metrics;
mod notifications;
mod numbers;
mod oidc;
mod operator_connect;
mod operators;
mod places;
mod processes;
mod provisioning;
mod readiness;
mod retention;
mod roles;
mod scale;
mod store;
mod tags;
mod tls;
mod traces;
mod transfer;
mod transport;
mod upgrade;
mod users;

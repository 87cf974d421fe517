//! The integration tests: one test binary (faster to link), one module per area.
//!
//! Every test runs against the real server on a socket, or, for the store conformance suite,
//! against the real databases; each area runs on both SQLite and PostgreSQL.

#![allow(unreachable_pub)]

mod helpers;

mod auth;
mod cli;
mod locations;
mod numbers;
mod operators;
mod store;
mod users;

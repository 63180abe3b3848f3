//! The Cobot server: challenges for the widget, tokens for sites, contributions for project owners.
//!
//! `startup` builds the HTTP application; `routes` holds the handlers; `store` is the only way to storage;
//! `token` signs and checks verification tokens; `owner` holds the project owners' and operators' tools.

pub mod config;
pub mod intake;
pub mod labels;
pub mod model;
pub mod owner;
pub mod reestimate;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod token;

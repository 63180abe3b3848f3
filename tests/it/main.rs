//! Black-box tests: each one starts the real `cobot-server` binary on a random port with its own data
//! directory, seeds it with the real owner commands, and talks to it over HTTP.

mod browser;
mod challenge;
mod cobot_cli;
mod consensus_flow;
mod durability;
mod helpers;
mod owner_api;
mod owner_cli;
mod owner_exports;
mod pow;
mod redis_faults;
mod redis_instances;
mod redis_support;
mod siteverify;
mod store_acceptance;
mod test_keys;
mod webdriver;

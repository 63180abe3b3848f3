//! HTTP handlers, one module per part of the surface. Routes are registered in `startup::routes`.

pub mod assets;
pub mod body;
pub mod challenge;
pub mod health;
pub mod owner;
pub mod siteverify;
pub mod test_keys;

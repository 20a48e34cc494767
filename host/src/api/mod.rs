//! The ML-node PoC API over HTTP.

pub mod checks;
pub mod error;
pub mod server;
pub mod wire;

//! The PoCForge host daemon: the network's ML-node PoC API served by a pool of devices.
//!
//! Layers, from the network inwards:
//! - [`api`]: the HTTP API (axum), field for field as the network defines it;
//! - [`nonce`]: the nonce sequence of a node;
//! - [`outbox`] and [`sender`]: durable, retried callbacks.

pub mod api;
pub mod nonce;
pub mod outbox;
pub mod receiver;
pub mod sender;

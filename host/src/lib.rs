//! The PoCForge host daemon: the network's ML-node PoC API served by a pool of devices.
//!
//! Layers, from the network inwards:
//! - [`api`]: the HTTP API (axum), field for field as the network defines it;
//! - [`node`]: the ML node's state machine, `/generate` jobs, and what they run on;
//! - [`queue`]: units of work pulled by devices (split by measured throughput), with the cap;
//! - [`pool`] and [`device`]: one thread per device, fault handling, quarantine;
//! - [`commit`]: the golden cross-check and the durable commit of results;
//! - [`outbox`] and [`sender`]: durable, retried callbacks;
//! - [`engine`] and [`models`]: the bridge to `golden::poc` (all PoC math lives there);
//! - [`metrics`], [`config`], [`daemon`] (the `host run` command), [`receiver`], [`loadtest`],
//!   [`bench`].

pub mod api;
pub mod bench;
pub mod commit;
pub mod config;
pub mod daemon;
pub mod device;
pub mod engine;
pub mod jobs;
pub mod loadtest;
pub mod metrics;
pub mod models;
pub mod node;
pub mod nonce;
pub mod outbox;
pub mod pool;
pub mod queue;
pub mod rate;
pub mod receiver;
pub mod sender;
pub mod work;

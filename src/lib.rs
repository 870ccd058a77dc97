//! edgelens: on-device video inference for Azure IoT Edge.
//!
//! Data flows ingest -> engine -> publish; the module twin is the control plane.

pub mod annotate;
pub mod bench;
pub mod control;
pub mod defaults;
pub mod edgehub;
pub mod engine;
pub mod ingest;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod pipeline;
pub mod publish;
pub mod redact;
pub mod scene;
pub mod snapshot;
pub mod track;
pub mod ui;

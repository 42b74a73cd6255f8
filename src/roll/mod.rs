//! The roll engine: the model of docs/design.md §2 — record policy, persisted
//! state, and the pure plan that decides the step due now.

pub mod executor;
pub mod files;
pub mod idle;
pub mod journal;
pub mod keys;
pub mod plan;
pub mod policy;
pub mod presented;
pub mod safety;
pub mod state;
pub mod zone_writer;

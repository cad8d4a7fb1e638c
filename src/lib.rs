//! Switchyard: an OpenAI-compatible LLM gateway on Pingora.
//!
//! A request's path through the crate: [`proxy`] (Pingora hooks) reads it, [`config`] supplies
//! the live [`config::live::Snapshot`], [`routing`] picks a target, [`providers`] knows how to
//! reach it, and [`metrics`] records the outcome. [`admin`] serves the operator's listener.

pub mod admin;
pub mod audit;
pub mod cache;
pub mod config;
pub mod embed;
pub mod error;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod shutdown;
pub mod spend;

//! Spend: what every request cost (usage x price), what the cache saved, and the records that
//! feed metrics and the audit log.

pub mod pricing;
pub mod usage;

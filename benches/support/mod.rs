//! Helpers of the throughput benchmark: the nginx receiver and `/proc` readings.

pub mod endpoints;
pub mod nginx;
pub mod proc_stats;

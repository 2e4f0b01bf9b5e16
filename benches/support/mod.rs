//! Helpers of the throughput benchmark: the nginx receiver, the rig's upstream choice and
//! `/proc` readings.

pub mod endpoints;
pub mod nginx;
pub mod proc_stats;
pub mod upstream;
pub mod wait;

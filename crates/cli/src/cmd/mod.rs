pub mod agent;
pub mod oops;
pub mod serve;

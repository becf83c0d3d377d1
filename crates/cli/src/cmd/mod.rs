pub mod agent;
pub mod core;
pub mod decode;
pub mod fixes;
pub mod log;
pub mod oops;
pub mod serve;
pub mod sys;

pub mod core;
pub mod decode;
pub mod fixes;
pub mod log;
pub mod oops;
pub mod sys;

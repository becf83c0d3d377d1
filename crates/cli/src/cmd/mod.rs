pub mod core;
pub mod log;
pub mod oops;
pub mod sys;

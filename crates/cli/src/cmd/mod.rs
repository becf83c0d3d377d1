pub mod fixes;
pub mod oops;

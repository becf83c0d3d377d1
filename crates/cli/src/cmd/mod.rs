pub mod oops;
pub mod fixes;

pub mod decode;
pub mod oops;

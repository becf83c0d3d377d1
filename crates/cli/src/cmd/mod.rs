pub mod oops;
pub mod decode;

pub mod oops;

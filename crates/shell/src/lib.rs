mod args;
pub mod bt;
mod dis;
pub mod help;
mod kmem;
mod list;
mod modules;
pub mod output;
pub mod ptype;
mod rd;
mod runq;
pub mod session;
mod sys;

pub use help::COMMANDS;
pub use output::{CmdError, Output};
pub use session::Session;

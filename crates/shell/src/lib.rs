pub mod bt;
pub mod cmds;
pub mod session;

pub use session::{CmdError, Output, Session, COMMANDS};

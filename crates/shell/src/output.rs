//! What every command gives back: text for people and a JSON value for machines
//! (docs/json/core.md), or an error.

use serde_json::Value;

/// One command's result.
pub struct Output {
    pub text: String,
    pub json: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Program(#[from] kmortem_kernel::program::Error),
    #[error(transparent)]
    Read(#[from] kmortem_kernel::mem::ReadError),
}

pub(crate) fn usage(s: impl Into<String>) -> CmdError {
    CmdError::Usage(s.into())
}

//! `kmortem-fixes`: known-bug knowledge for kmortem.
//!
//! - [`FixIndex::import_cves`] indexes the Linux kernel CNA's CVE records (a clone of the kernel's
//!   `vulns` repository); `git::import_git` indexes a kernel git history (feature `git`).
//! - [`CrashQuery::from_text`] reads a crash (console log, `kmortem oops --json`, drgn or crash
//!   `bt`), [`FixIndex::search`] ranks the known fixes for it with evidence, and
//!   [`version::verdict`] tells whether a kernel version is affected.
//!
//! ```no_run
//! use kmortem_fixes::{default_home, CrashQuery, FixIndex};
//! let ix = FixIndex::open(&default_home()).unwrap();
//! let q = CrashQuery::from_text(&std::fs::read_to_string("console.log").unwrap());
//! for c in ix.search(&q, 5).unwrap() {
//!     println!("{:?} {} {}", c.cve, c.subject, c.score);
//! }
//! ```

pub mod baseline;
pub mod devset;
pub mod eval;
pub mod extract;
#[cfg(feature = "git")]
pub mod git;
mod index;
pub mod model;
pub mod query;
mod rank;
pub mod record;
pub mod signals;
pub mod title;
pub mod version;

pub use index::{default_home, FixIndex, ImportOptions, ImportStats, IndexError, Manifest};
pub use query::CrashQuery;
pub use rank::{Candidate, Evidence};
pub use record::Entry;
pub use version::{identify_kernel, verdict, KVersion, KernelId, Range, Verdict};

//! Kernel versions, affected ranges, and the "is my kernel affected?" verdict.
//!
//! Folklore (checked on the records in `../shared/data/kernel-vulns`, pinned by
//! `tests::dyad_semantics_on_real_records` and `tests/cve.rs`):
//! - A `.dyad` line is `introVersion:introSHA:fixVersion:fixSHA`, one per stable branch the fix
//!   reached. `0` in either half means unknown (intro) or not fixed (fix). 74,477 lines have both
//!   halves, 3,200 have `fixVersion` 0 (introduced by a backport into a stable branch that never got
//!   the fix, e.g. `4.14.189:39e0..:0:0`), 38 have `introVersion` 0 (`0:0:5.18.3:20b2..`).
//! - The mainline fix is the line whose fixVersion has no patch level (`5.13` for CVE-2021-46984);
//!   stable fixes have one (`5.12.5`). An introVersion without patch level is a mainline release,
//!   so it affects every later branch; with a patch level it is a backport into that branch only.
//! - The JSON `versions` repeat this as semver: `{version: "5.12.5", lessThanOrEqual: "5.12.*",
//!   status: unaffected}` (fixed on the 5.12 branch at 5.12.5), `{version: "4.18", status:
//!   affected}` (introduced), `{version: "5.13", versionType: original_commit_for_fix}`.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A kernel version `major.minor[.patch]`; `-rcN` is kept as a pre-release of `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KVersion {
    pub major: u32,
    pub minor: u32,
    /// `None` for a mainline release (`5.13`), `Some(n)` for a stable release (`5.12.5`).
    pub patch: Option<u32>,
    /// `Some(n)` for `-rcN` (only with `patch == None`).
    pub rc: Option<u32>,
}

impl KVersion {
    pub fn new(major: u32, minor: u32, patch: Option<u32>) -> Self {
        KVersion {
            major,
            minor,
            patch,
            rc: None,
        }
    }
    /// Parses `5.12`, `5.12.9`, `2.6.19`, `2.6.32.71`, `5.13-rc3`. Trailing text after the numbers
    /// is ignored by [`KVersion::parse_prefix`], rejected here.
    pub fn parse(s: &str) -> Option<KVersion> {
        let (v, rest) = KVersion::parse_prefix(s)?;
        if rest.is_empty() {
            Some(v)
        } else {
            None
        }
    }
    /// Parses a version at the start of `s`; returns it and the rest.
    pub fn parse_prefix(s: &str) -> Option<(KVersion, &str)> {
        let mut nums = Vec::new();
        let mut rest = s;
        loop {
            let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 6 {
                return None;
            }
            nums.push(rest[..n].parse::<u32>().ok()?);
            rest = &rest[n..];
            if nums.len() < 4
                && rest.starts_with('.')
                && rest[1..].starts_with(|c: char| c.is_ascii_digit())
            {
                rest = &rest[1..];
                continue;
            }
            break;
        }
        if nums.len() < 2 {
            return None;
        }
        // 2.6.x: the "minor" of the 2.6 era is the third number.
        let (major, minor, patch) = if nums[0] == 2 && nums[1] == 6 && nums.len() >= 3 {
            (2, 6_000 + nums[2], nums.get(3).copied())
        } else {
            (nums[0], nums[1], nums.get(2).copied())
        };
        let mut v = KVersion {
            major,
            minor,
            patch,
            rc: None,
        };
        if let Some(r) = rest.strip_prefix("-rc") {
            let n = r.bytes().take_while(|b| b.is_ascii_digit()).count();
            if n > 0 && n < 4 {
                v.rc = r[..n].parse().ok();
                if v.patch == Some(0) {
                    v.patch = None;
                }
                rest = &r[n..];
            }
        }
        Some((v, rest))
    }
    /// The stable branch (`5.12`).
    pub fn branch(self) -> (u32, u32) {
        (self.major, self.minor)
    }
    pub fn is_mainline(self) -> bool {
        self.patch.is_none()
    }
    fn key(self) -> (u32, u32, i64) {
        // 5.13-rc3 < 5.13 = 5.13.0 < 5.13.1
        let p = match (self.patch, self.rc) {
            (Some(p), _) => p as i64,
            (None, Some(rc)) => -1000 + rc as i64,
            (None, None) => 0,
        };
        (self.major, self.minor, p)
    }
}

impl PartialOrd for KVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for KVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.major == 2 && self.minor >= 6_000 {
            write!(f, "2.6.{}", self.minor - 6_000)?;
        } else {
            write!(f, "{}.{}", self.major, self.minor)?;
        }
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        if let Some(rc) = self.rc {
            write!(f, "-rc{rc}")?;
        }
        Ok(())
    }
}

/// One affected range on one branch, from a `.dyad` line or the JSON `versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Version that introduced the bug (`None`: unknown).
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_commit: Option<String>,
    /// Version that fixed it on this branch (`None`: not fixed on this branch).
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_commit: Option<String>,
}

/// Errors of the `.dyad` parser.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DyadError {
    #[error("line {line}: expected introVersion:introSHA:fixVersion:fixSHA, got {got} fields")]
    Fields { line: usize, got: usize },
    #[error("line {line}: bad version {value:?}")]
    Version { line: usize, value: String },
    #[error("line {line}: bad commit id {value:?}")]
    Commit { line: usize, value: String },
}

fn dyad_version(s: &str, line: usize) -> Result<Option<String>, DyadError> {
    if s == "0" {
        return Ok(None);
    }
    KVersion::parse(s)
        .map(|_| Some(s.to_string()))
        .ok_or(DyadError::Version {
            line,
            value: s.to_string(),
        })
}
fn dyad_sha(s: &str, line: usize) -> Result<Option<String>, DyadError> {
    if s == "0" {
        return Ok(None);
    }
    if (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(s.to_ascii_lowercase()))
    } else {
        Err(DyadError::Commit {
            line,
            value: s.to_string(),
        })
    }
}

/// Parses a `.dyad` file. `#` lines are comments. Bad lines are errors (the caller decides
/// whether to skip the record or the line).
pub fn parse_dyad(text: &str) -> Result<Vec<Range>, DyadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = l.split(':').collect();
        if parts.len() != 4 {
            return Err(DyadError::Fields {
                line: line_no,
                got: parts.len(),
            });
        }
        out.push(Range {
            introduced: dyad_version(parts[0], line_no)?,
            introduced_commit: dyad_sha(parts[1], line_no)?,
            fixed: dyad_version(parts[2], line_no)?,
            fixed_commit: dyad_sha(parts[3], line_no)?,
        });
    }
    Ok(out)
}

/// Where the user's kernel version came from, and how far it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelId {
    /// What the user or the report said (`6.1.0-43-cloud-amd64`, `5.12.0`).
    pub release: String,
    /// The upstream version, when it is known (`6.1.187`).
    pub upstream: Option<String>,
    /// The version the release string starts with (`3.10.0`), always filled when parseable.
    pub base: Option<String>,
    /// Why the upstream version is unknown (`None` when known).
    pub reason: Option<String>,
}

/// Identifies the upstream version of a kernel from its release string and, when the oops carried
/// one, the build string after `#` (`1 Debian 6.1.187-1`).
///
/// Folklore: distributions that ship a stable release with their own ABI number put a `.0` patch
/// level in the release string: Debian `6.1.0-43-cloud-amd64` is 6.1.187 (the `CPU:` line's
/// `#1 Debian 6.1.187-1` says so, since Debian 9), Ubuntu `5.15.0-91-generic` is some 5.15.y, RHEL
/// `3.10.0-514.26.2.el7` is 3.10 with thousands of backports. Only upstream-looking strings
/// (`5.12.0`, `6.6.30`, `6.8.0-rc3`, `6.1.12-arch1-1`, `6.5.6-300.fc39`) are taken as upstream.
/// Tests: `tests::kernel_ids`.
pub fn identify_kernel(release: &str, build: Option<&str>) -> KernelId {
    let release = release.trim();
    let parsed = KVersion::parse_prefix(release);
    let base = parsed.map(|(v, _)| v.to_string());
    let mut id = KernelId {
        release: release.to_string(),
        upstream: None,
        base: base.clone(),
        reason: None,
    };
    let Some((v, rest)) = parsed else {
        id.reason = Some(format!("cannot read a version from {release:?}"));
        return id;
    };
    // Debian's build string names the upstream version: `#1 Debian 6.1.187-1`, `#1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2024-...)`.
    if let Some(b) = build {
        if let Some(p) = b.find("Debian ") {
            if let Some((dv, _)) = KVersion::parse_prefix(&b[p + 7..]) {
                if dv.branch() == v.branch() {
                    id.upstream = Some(dv.to_string());
                    return id;
                }
            }
        }
    }
    let lower = rest.to_ascii_lowercase();
    let vendor = [
        (".el", "Red Hat / CentOS / Rocky / Alma"),
        ("el7", "Red Hat / CentOS"),
        ("el8", "Red Hat / CentOS"),
        ("el9", "Red Hat / CentOS"),
        (".uek", "Oracle UEK"),
        ("generic", "Ubuntu"),
        ("-aws", "Ubuntu/Amazon"),
        ("-azure", "Ubuntu/Azure"),
        ("-gcp", "Ubuntu/GCP"),
        ("-default", "SUSE"),
        ("amzn", "Amazon Linux"),
        ("-cloud-amd64", "Debian"),
        ("-amd64", "Debian"),
        ("-arm64", "Debian"),
    ]
    .iter()
    .find(|(k, _)| lower.contains(k))
    .map(|(_, name)| *name);
    let upstream_like = rest.is_empty()
        || rest.starts_with('+')
        || rest.starts_with("-rc") && v.rc.is_some()
        || lower.contains(".fc")
        || lower.contains("-arch")
        || (rest.starts_with('-')
            && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            && vendor.is_none());
    if upstream_like && vendor.is_none() {
        let mut up = v;
        if up.patch == Some(0) && up.rc.is_none() {
            up.patch = None;
        }
        id.upstream = Some(up.to_string());
        return id;
    }
    id.reason = Some(match vendor {
        Some(name) => format!(
            "{name} kernel {release}: the release string does not give the upstream stable version (base {}), and the vendor backports fixes",
            base.clone().unwrap_or_default()
        ),
        None => format!(
            "distribution kernel {release}: the release string does not give the upstream stable version (base {})",
            base.clone().unwrap_or_default()
        ),
    });
    id
}

/// The answer to "is my kernel affected?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `affected`, `fixed`, `not affected`, or `unknown`.
    pub status: String,
    /// The upstream version the verdict is about (or the base version when unknown).
    pub kernel: String,
    /// First fixed version on the kernel's stable branch (or the mainline fix when the branch never
    /// got it), for `affected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
    pub reason: String,
}

/// Decides whether `kernel` is affected given the record's ranges.
pub fn verdict(kernel: &KernelId, ranges: &[Range]) -> Verdict {
    let Some(up) = kernel.upstream.as_deref().and_then(KVersion::parse) else {
        let base = kernel
            .base
            .clone()
            .unwrap_or_else(|| kernel.release.clone());
        return Verdict {
            status: "unknown".into(),
            kernel: base,
            fixed_in: None,
            reason: kernel
                .reason
                .clone()
                .unwrap_or_else(|| "upstream version unknown".into()),
        };
    };
    let kernel_s = up.to_string();
    let unknown = |reason: String| Verdict {
        status: "unknown".into(),
        kernel: kernel_s.clone(),
        fixed_in: None,
        reason,
    };
    let parsed: Vec<(Option<KVersion>, Option<KVersion>)> = ranges
        .iter()
        .map(|r| {
            (
                r.introduced.as_deref().and_then(KVersion::parse),
                r.fixed.as_deref().and_then(KVersion::parse),
            )
        })
        .collect();
    if parsed.is_empty() {
        return unknown("the record has no version ranges".into());
    }
    let branch = up.branch();
    // Mainline fix: the fix version without patch level; the earliest if several.
    let mainline_fix = parsed
        .iter()
        .filter_map(|(_, f)| *f)
        .filter(|f| f.is_mainline())
        .min();
    let branch_fix = parsed
        .iter()
        .filter_map(|(_, f)| *f)
        .filter(|f| !f.is_mainline() && f.branch() == branch)
        .min();
    // Introduced on this kernel? Mainline intro applies to all later versions; a stable intro only
    // to its own branch.
    let intros: Vec<KVersion> = parsed.iter().filter_map(|(i, _)| *i).collect();
    let any_unknown_intro = parsed.iter().any(|(i, _)| i.is_none());
    // Folklore: a bug "introduced in 5.6" landed during the 5.6 cycle (the merge window, before
    // -rc1, for nearly all commits), so a 5.6-rcN kernel has it: CVE-2020-36791 (introduced and
    // fixed in 5.6) crashed syzbot's 5.6.0-rc6. Pinned by `tests::verdicts`.
    let introduced = any_unknown_intro
        || intros.iter().any(|i| {
            if i.is_mainline() {
                up >= *i
                    || up.branch() > i.branch()
                    || (up.branch() == i.branch() && up.rc.is_some())
            } else {
                i.branch() == branch && up >= *i
            }
        });
    // Fixed?
    if let Some(bf) = branch_fix {
        if up >= bf {
            return Verdict {
                status: "fixed".into(),
                kernel: kernel_s,
                fixed_in: Some(bf.to_string()),
                reason: format!(
                    "fixed on the {}.{} branch in {bf}",
                    branch.0,
                    display_minor(branch)
                ),
            };
        }
    }
    if let Some(mf) = mainline_fix {
        if up.branch() > mf.branch() || (up.branch() == mf.branch() && up >= mf) {
            return Verdict {
                status: "fixed".into(),
                kernel: kernel_s,
                fixed_in: Some(mf.to_string()),
                reason: format!("fixed in mainline {mf}, before this branch"),
            };
        }
    }
    if !introduced {
        let first = intros
            .iter()
            .min()
            .map(|v| v.to_string())
            .unwrap_or_default();
        return Verdict {
            status: "not affected".into(),
            kernel: kernel_s,
            fixed_in: None,
            reason: format!("introduced in {first}, after this kernel"),
        };
    }
    let intro_note = if any_unknown_intro {
        "introduction unknown".to_string()
    } else {
        format!(
            "introduced in {}",
            intros
                .iter()
                .min()
                .map(|v| v.to_string())
                .unwrap_or_default()
        )
    };
    match (branch_fix, mainline_fix) {
        (Some(bf), _) => Verdict {
            status: "affected".into(),
            kernel: kernel_s,
            fixed_in: Some(bf.to_string()),
            reason: format!(
                "{intro_note}; fixed on the {}.{} branch in {bf}",
                branch.0,
                display_minor(branch)
            ),
        },
        (None, Some(mf)) => Verdict {
            status: "affected".into(),
            kernel: kernel_s,
            fixed_in: Some(mf.to_string()),
            reason: format!(
                "{intro_note}; no fix on the {}.{} branch in the record; fixed in mainline {mf}",
                branch.0,
                display_minor(branch)
            ),
        },
        (None, None) => Verdict {
            status: "affected".into(),
            kernel: kernel_s,
            fixed_in: None,
            reason: format!("{intro_note}; the record names no fixed version"),
        },
    }
}

fn display_minor(b: (u32, u32)) -> String {
    if b.0 == 2 && b.1 >= 6_000 {
        format!("6.{}", b.1 - 6_000)
    } else {
        b.1.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order() {
        let v = |s| KVersion::parse(s).unwrap();
        assert!(v("5.12.5") < v("5.13"));
        assert!(v("5.13-rc3") < v("5.13"));
        assert!(v("5.12") < v("5.12.1"));
        assert!(v("2.6.39") < v("3.0"));
        assert_eq!(v("2.6.32.71").to_string(), "2.6.32.71");
        assert_eq!(KVersion::parse("5"), None);
        assert_eq!(KVersion::parse("x.y"), None);
    }

    #[test]
    fn kernel_ids() {
        let k = identify_kernel("6.1.0-43-cloud-amd64", Some("1 Debian 6.1.187-1"));
        assert_eq!(k.upstream.as_deref(), Some("6.1.187"));
        let k = identify_kernel("6.1.0-43-cloud-amd64", None);
        assert_eq!(k.upstream, None);
        assert_eq!(k.base.as_deref(), Some("6.1.0"));
        let k = identify_kernel("3.10.0-514.26.2.el7.x86_64", Some("1"));
        assert_eq!(k.upstream, None);
        assert_eq!(k.base.as_deref(), Some("3.10.0"));
        assert!(k.reason.unwrap().contains("Red Hat"));
        assert_eq!(
            identify_kernel("5.12.0", None).upstream.as_deref(),
            Some("5.12")
        );
        assert_eq!(
            identify_kernel("6.6.30", None).upstream.as_deref(),
            Some("6.6.30")
        );
        assert_eq!(identify_kernel("5.15.0-91-generic", None).upstream, None);
        assert_eq!(
            identify_kernel("6.8.0-rc3-syzkaller", None)
                .upstream
                .as_deref(),
            Some("6.8-rc3")
        );
    }

    #[test]
    fn dyad_parser() {
        let r = parse_dyad("# c\n4.18:a6088845c2bf754d6cb2572b484180680b037804:5.12.5:2ef3c76540c49167a0bc3d5f80d00fd1fc4586df\n0:0:5.19:4c971d2f3548e4f11b1460ac048f5307e4b39fdb\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].introduced, None);
        assert_eq!(r[0].fixed.as_deref(), Some("5.12.5"));
        assert!(parse_dyad("1:2:3").is_err());
        assert!(parse_dyad("5.1:zz:0:0").is_err());
    }

    fn rg(i: Option<&str>, f: Option<&str>) -> Range {
        Range {
            introduced: i.map(String::from),
            introduced_commit: None,
            fixed: f.map(String::from),
            fixed_commit: None,
        }
    }
    fn up(v: &str) -> KernelId {
        KernelId {
            release: v.into(),
            upstream: Some(v.into()),
            base: Some(v.into()),
            reason: None,
        }
    }

    #[test]
    fn verdicts() {
        // CVE-2021-46984's dyad.
        let r = vec![
            rg(Some("4.18"), Some("5.4.120")),
            rg(Some("4.18"), Some("5.10.38")),
            rg(Some("4.18"), Some("5.11.22")),
            rg(Some("4.18"), Some("5.12.5")),
            rg(Some("4.18"), Some("5.13")),
        ];
        let v = verdict(&up("5.12"), &r);
        assert_eq!(
            (v.status.as_str(), v.fixed_in.as_deref()),
            ("affected", Some("5.12.5"))
        );
        assert_eq!(verdict(&up("5.12.5"), &r).status, "fixed");
        assert_eq!(verdict(&up("5.13"), &r).status, "fixed");
        assert_eq!(verdict(&up("6.1.1"), &r).status, "fixed");
        assert_eq!(verdict(&up("4.17.3"), &r).status, "not affected");
        // An -rc of the introducing release has the bug (it landed in the merge window).
        assert_eq!(verdict(&up("4.18-rc2"), &r).status, "affected");
        assert_eq!(verdict(&up("4.17-rc2"), &r).status, "not affected");
        let v = verdict(&up("4.19.100"), &r);
        assert_eq!(
            (v.status.as_str(), v.fixed_in.as_deref()),
            ("affected", Some("5.13"))
        );
        // Backport-introduced on 4.14.189, never fixed there.
        let r2 = vec![
            rg(Some("4.14.189"), None),
            rg(Some("5.8"), Some("5.10.2")),
            rg(Some("5.8"), Some("5.11")),
        ];
        assert_eq!(verdict(&up("4.14.100"), &r2).status, "not affected");
        assert_eq!(verdict(&up("4.14.200"), &r2).status, "affected");
        assert_eq!(verdict(&up("4.19.1"), &r2).status, "not affected");
        let rhel = identify_kernel("3.10.0-514.26.2.el7.x86_64", None);
        let v = verdict(&rhel, &r);
        assert_eq!(v.status, "unknown");
        assert_eq!(v.kernel, "3.10.0");
    }
}

//! One known fix, from a CVE record or a commit, in the form the index stores and ranks.

use crate::extract::{self, KindTag};
use crate::version::{parse_dyad, KVersion, Range};
use kmortem_oops::line;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A known fix. Stored as JSON in the index (`data` field) and returned with candidates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `CVE-2021-46984`, or `None` for a commit from a git history.
    pub cve: Option<String>,
    /// Full SHAs of the fix commits (mainline first).
    pub commits: Vec<String>,
    pub subject: String,
    /// Function-like identifiers named in the prose (not in the quoted trace).
    pub funcs: Vec<String>,
    /// Functions named in the subject line.
    pub subject_funcs: Vec<String>,
    /// Functions changed by the commit (from hunk headers; git source only).
    pub touched: Vec<String>,
    /// Files: `programFiles`, files touched, files named in the text.
    pub files: Vec<String>,
    /// Frames of the quoted trace(s), reliable ones, in order (top first).
    pub trace: Vec<String>,
    /// Title line of the quoted report, if any (`BUG: KASAN: use-after-free in foo`).
    pub trace_title: Option<String>,
    /// Crash kinds the text names.
    pub kinds: Vec<String>,
    /// Kind of the quoted report (its header), when there is one.
    pub trace_kind: Option<String>,
    /// syzkaller-style crash titles the text quotes, normalized ([`crate::title::normalize`]):
    /// `kasan: use-after-free read in nfc_llcp_put_ssap`.
    #[serde(default)]
    pub titles: Vec<String>,
    /// Affected ranges per branch.
    pub ranges: Vec<Range>,
    /// `Fixes:` tags (abbreviated SHAs).
    pub fixes: Vec<String>,
    /// `Reported-by: syzbot+...` present.
    pub syzbot: bool,
    /// `cve` or `git`.
    pub source: String,
}

/// Errors reading a CVE record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record has no CVE id")]
    NoId,
    #[error("record has no description")]
    NoDescription,
}

/// What the text of a fix commit message yields.
#[derive(Debug, Default)]
pub struct MessageFacts {
    pub subject: String,
    pub prose: String,
    pub report: String,
    pub funcs: Vec<String>,
    pub subject_funcs: Vec<String>,
    pub files: Vec<String>,
    /// Files named only inside the quoted report.
    pub report_files: Vec<String>,
    pub trace: Vec<String>,
    pub trace_title: Option<String>,
    pub kinds: Vec<KindTag>,
    pub trace_kind: Option<KindTag>,
    pub fixes: Vec<String>,
    pub syzbot: bool,
    /// Crash titles quoted in the prose (normalized).
    pub prose_titles: Vec<String>,
    /// Crash titles quoted in the report part, and the quoted report's own title (normalized).
    pub report_titles: Vec<String>,
}

/// Reads a commit message: subject, prose identifiers, quoted trace (through `kmortem_oops`
/// when it finds reports, else by the light frame scanner), kinds, `Fixes:` and syzbot tags.
pub fn message_facts(message: &str) -> MessageFacts {
    let body = extract::strip_cve_preamble(message);
    let subject = extract::subject_of(body);
    let (prose, report) = extract::split_report(body);
    let mut f = MessageFacts {
        subject: subject.clone(),
        ..Default::default()
    };
    f.subject_funcs = extract::idents_in_text(&subject);
    // Prose identifiers; tags like `Reported-by:` lines carry emails, skip them.
    let prose_no_tags: String = prose
        .lines()
        .filter(|l| !is_tag_line(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    f.funcs = extract::idents_in_text(&prose_no_tags);
    let files: BTreeSet<String> = extract::files_in_text(&prose_no_tags).into_iter().collect();
    f.report_files = extract::files_in_text(&report)
        .into_iter()
        .filter(|p| !files.contains(p))
        .collect();
    // Trace: the oops parser first, the light scanner as fallback.
    let reports = kmortem_oops::parse(report.as_bytes());
    let mut trace: Vec<String> = Vec::new();
    for r in &reports {
        for fr in &r.frames {
            if fr.reliable && !fr.function.is_empty() {
                trace.push(line::base_function(&fr.function).to_string());
            }
        }
        if f.trace_title.is_none() && !r.title.is_empty() {
            f.trace_title = Some(r.title.clone());
        }
    }
    if trace.is_empty() {
        trace = extract::frames_in_text(&report)
            .into_iter()
            .filter(|fr| fr.reliable)
            .map(|fr| fr.function)
            .collect();
    }
    if f.trace_title.is_none() {
        // No report the parser could title: the first line with a header of its table.
        f.trace_title = report
            .lines()
            .map(line::strip_console_prefix)
            .find(|l| kmortem_oops::oops_header(l).is_some())
            .map(|l| l.trim().chars().take(200).collect());
    }
    f.trace_kind = extract::report_kind(&report);
    // Dedupe consecutive repeats (recursion) and cap.
    trace.dedup();
    trace.truncate(128);
    f.trace = trace;
    f.files = files.into_iter().collect();
    let mut kinds: BTreeSet<KindTag> = extract::kinds_in_text(&subject).into_iter().collect();
    kinds.extend(extract::kinds_in_text(&prose_no_tags));
    if let Some(k) = f.trace_kind {
        kinds.insert(k);
    }
    f.kinds = kinds.into_iter().collect();
    for line in body.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("Fixes:") {
            let sha: String = rest
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            if sha.len() >= 7 {
                f.fixes.push(sha.to_ascii_lowercase());
            }
        }
        if (l.starts_with("Reported-by:") || l.starts_with("Reported-and-tested-by:"))
            && l.contains("syzbot")
        {
            f.syzbot = true;
        }
    }
    f.prose_titles = crate::title::quoted_titles(&format!("{subject}\n{prose}"));
    f.report_titles = crate::title::quoted_titles(&report);
    if let Some(t) = &f.trace_title {
        let t = crate::title::normalize(t);
        if crate::title::function_of(&t).is_some() && !f.report_titles.contains(&t) {
            f.report_titles.push(t);
        }
    }
    f.prose = prose;
    f.report = report;
    f
}

fn is_tag_line(l: &str) -> bool {
    let t = l.trim_start();
    let colon = match t.find(':') {
        Some(c) => c,
        None => return false,
    };
    let key = &t[..colon];
    !key.is_empty()
        && key.len() < 30
        && key.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
        && key.contains('-')
        || key == "Link"
        || key == "Closes"
        || key == "Cc"
        || key == "Fixes"
}

/// A CVE record read from the `vulns` repository.
#[derive(Debug, Clone)]
pub struct CveRecord {
    pub entry: Entry,
    /// The description (fix commit message), for the full-text index.
    pub prose: String,
    pub report: String,
}

/// Builds an entry from the three files of a CVE record. `sha1` and `dyad` may be missing.
/// With `withhold_traces`, the quoted report is left out of the entry and of the text (the
/// evaluation's "nobody quoted it yet" figure).
pub fn cve_record(
    json: &[u8],
    sha1: Option<&str>,
    dyad: Option<&str>,
    withhold_traces: bool,
) -> Result<CveRecord, RecordError> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    let id = v
        .pointer("/cveMetadata/cveId")
        .and_then(|x| x.as_str())
        .ok_or(RecordError::NoId)?
        .to_string();
    let cna = v.pointer("/containers/cna");
    let desc = cna
        .and_then(|c| c.get("descriptions"))
        .and_then(|d| d.as_array())
        .and_then(|a| {
            a.iter()
                .find(|d| {
                    d.get("lang")
                        .and_then(|l| l.as_str())
                        .is_none_or(|l| l.starts_with("en"))
                })
                .or_else(|| a.first())
        })
        .and_then(|d| d.get("value"))
        .and_then(|s| s.as_str())
        .ok_or(RecordError::NoDescription)?;
    let facts = message_facts(desc);
    let mut files: BTreeSet<String> = facts.files.iter().cloned().collect();
    let mut ranges: Vec<Range> = Vec::new();
    let mut git_fix: Vec<String> = Vec::new();
    let mut semver_fixed: Vec<String> = Vec::new();
    let mut semver_intro: Vec<String> = Vec::new();
    if let Some(aff) = cna
        .and_then(|c| c.get("affected"))
        .and_then(|a| a.as_array())
    {
        for a in aff {
            if let Some(pf) = a.get("programFiles").and_then(|p| p.as_array()) {
                for p in pf.iter().filter_map(|p| p.as_str()) {
                    if let Some(n) = line::source_path(p) {
                        files.insert(n);
                    }
                }
            }
            for ver in a
                .get("versions")
                .and_then(|x| x.as_array())
                .into_iter()
                .flatten()
            {
                let version = ver.get("version").and_then(|x| x.as_str()).unwrap_or("");
                let status = ver.get("status").and_then(|x| x.as_str()).unwrap_or("");
                let vtype = ver
                    .get("versionType")
                    .and_then(|x| x.as_str())
                    .unwrap_or("");
                if vtype == "git" {
                    if let Some(lt) = ver.get("lessThan").and_then(|x| x.as_str()) {
                        git_fix.push(lt.to_string());
                    }
                } else if status == "unaffected"
                    && version != "0"
                    && KVersion::parse(version).is_some()
                {
                    semver_fixed.push(version.to_string());
                } else if status == "affected" && KVersion::parse(version).is_some() {
                    semver_intro.push(version.to_string());
                }
            }
        }
    }
    if let Some(d) = dyad {
        // A bad .dyad leaves the JSON ranges in charge (missing data degrades the verdict only).
        if let Ok(r) = parse_dyad(d) {
            ranges = r;
        }
    }
    if ranges.is_empty() && !semver_fixed.is_empty() {
        // From the JSON: every "unaffected from X" is a fix on X's branch; intros from "affected".
        let intro = semver_intro
            .iter()
            .filter_map(|s| KVersion::parse(s))
            .min()
            .map(|v| v.to_string());
        for f in &semver_fixed {
            ranges.push(Range {
                introduced: intro.clone(),
                introduced_commit: None,
                fixed: Some(f.clone()),
                fixed_commit: None,
            });
        }
    }
    let mut commits: Vec<String> = sha1
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| l.len() >= 12 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|l| l.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    if commits.is_empty() {
        // The mainline fix is the dyad's fix commit on a version without patch level.
        for r in &ranges {
            if let (Some(f), Some(c)) = (&r.fixed, &r.fixed_commit) {
                if KVersion::parse(f).is_some_and(|v| v.is_mainline()) && !commits.contains(c) {
                    commits.push(c.clone());
                }
            }
        }
    }
    if commits.is_empty() {
        commits.extend(git_fix.into_iter().filter(|c| c.len() == 40).take(1));
    }
    let kinds_src: Vec<KindTag> = if withhold_traces {
        let mut k: BTreeSet<KindTag> = extract::kinds_in_text(&facts.subject).into_iter().collect();
        k.extend(extract::kinds_in_text(&facts.prose));
        k.into_iter().collect()
    } else {
        facts.kinds.clone()
    };
    let entry = Entry {
        cve: Some(id),
        commits,
        subject: facts.subject.clone(),
        funcs: facts.funcs.clone(),
        subject_funcs: facts.subject_funcs.clone(),
        touched: Vec::new(),
        files: {
            if !withhold_traces {
                files.extend(facts.report_files.iter().cloned());
            }
            files.into_iter().collect()
        },
        trace: if withhold_traces {
            Vec::new()
        } else {
            facts.trace.clone()
        },
        trace_title: if withhold_traces {
            None
        } else {
            facts.trace_title.clone()
        },
        kinds: kinds_src.iter().map(|k| k.as_str().to_string()).collect(),
        trace_kind: if withhold_traces {
            None
        } else {
            facts.trace_kind.map(|k| k.as_str().to_string())
        },
        titles: {
            let mut t = facts.prose_titles.clone();
            if !withhold_traces {
                for x in &facts.report_titles {
                    if !t.contains(x) {
                        t.push(x.clone());
                    }
                }
            }
            t
        },
        ranges,
        fixes: facts.fixes.clone(),
        syzbot: facts.syzbot,
        source: "cve".into(),
    };
    Ok(CveRecord {
        entry,
        prose: facts.prose,
        report: if withhold_traces {
            String::new()
        } else {
            facts.report
        },
    })
}

//! The kernel git history source: every non-merge commit becomes an entry with its subject, body,
//! `Fixes:` and `Reported-by: syzbot` tags, quoted traces, the files it touched and the functions
//! it touched (from the enclosing function of each changed hunk, like git's hunk headers).
//!
//! History is read with `gix` (no `git` subprocess). Imports are incremental: the manifest keeps
//! the last indexed HEAD per repository, and the next import hides everything reachable from it.
//! One thread walks the history; the per-commit work (message facts, tree and blob diffs) runs
//! on one worker per core, each with its own `gix::Repository` (gix is built without its
//! `parallel` feature, so a repository handle cannot be shared between threads).

use crate::extract;
use crate::index::{FixIndex, IndexError};
use crate::record::{message_facts, Entry};
use gix::bstr::ByteSlice;
use gix::ObjectId;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;
use tantivy::Term;

/// Options of a git import.
#[derive(Debug, Clone, Default)]
pub struct GitOptions {
    /// Only commits not reachable from this revision (a tag, a branch, or a full SHA).
    pub since: Option<String>,
    /// Stop after this many commits (for trials).
    pub max_commits: Option<usize>,
    /// Skip the tree and blob diffs (messages only; much faster).
    pub no_diffs: bool,
}

/// What a git import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GitStats {
    pub head: String,
    /// Commits walked (merges included).
    pub walked: usize,
    /// Non-merge commits indexed.
    pub indexed: usize,
    pub merges: usize,
    pub files_diffed: usize,
    pub seconds: f64,
    pub commits_per_second: f64,
    /// The walk started from the previous import's HEAD (incremental).
    pub incremental: bool,
}

fn gerr(e: impl std::fmt::Display) -> IndexError {
    IndexError::Git(e.to_string())
}

/// Resolves a revision without gix's `revision` feature: a full SHA, or a tag/branch name.
fn resolve(repo: &gix::Repository, rev: &str) -> Result<ObjectId, IndexError> {
    if rev.len() == 40 {
        if let Ok(id) = ObjectId::from_hex(rev.as_bytes()) {
            return Ok(id);
        }
    }
    for name in [
        rev.to_string(),
        format!("refs/tags/{rev}"),
        format!("refs/heads/{rev}"),
        format!("refs/remotes/{rev}"),
    ] {
        if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str()) {
            let id = r.peel_to_id().map_err(gerr)?;
            // Annotated tags peel to the commit.
            let obj = repo.find_object(id).map_err(gerr)?;
            let commit = obj.peel_to_kind(gix::object::Kind::Commit).map_err(gerr)?;
            return Ok(commit.id);
        }
    }
    Err(IndexError::Git(format!(
        "cannot resolve revision {rev:?} (use a tag, a branch, or a full SHA)"
    )))
}

/// Imports the history of the repository at `path` into the index. `progress` is called with the
/// number of commits walked so far (every 256 commits and at the end).
pub fn import_git(
    ix: &mut FixIndex,
    path: &Path,
    opts: &GitOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<GitStats, IndexError> {
    let t0 = Instant::now();
    let mut repo = gix::open(path).map_err(gerr)?;
    repo.object_cache_size_if_unset(64 * 1024 * 1024);
    let key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned();
    let head = repo.head_id().map_err(gerr)?.detach();
    let mut stats = GitStats {
        head: head.to_string(),
        ..Default::default()
    };
    let mut hidden: Vec<ObjectId> = Vec::new();
    if let Some(last) = ix.manifest.git.get(&key) {
        if let Ok(id) = ObjectId::from_hex(last.as_bytes()) {
            if repo.find_object(id).is_ok() {
                hidden.push(id);
                stats.incremental = true;
            }
        }
    }
    if let Some(since) = &opts.since {
        hidden.push(resolve(&repo, since)?);
    }
    if hidden.contains(&head) {
        stats.seconds = t0.elapsed().as_secs_f64();
        progress(0);
        return Ok(stats);
    }
    // The walk is cheap and stays on one thread; the per-commit work (message facts, tree
    // diff, blob diffs) runs on worker threads, each with its own repository handle; this
    // thread only adds documents.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 16);
    drop(repo);
    let walked = AtomicUsize::new(0);
    let merges = AtomicUsize::new(0);
    let (job_tx, job_rx) = mpsc::sync_channel::<(ObjectId, Option<ObjectId>)>(4096);
    let job_rx = Mutex::new(job_rx);
    let (res_tx, res_rx) = mpsc::sync_channel::<Result<Indexed, IndexError>>(1024);
    let mut w = ix.writer()?;
    let mut first_err: Option<IndexError> = None;
    let walk_result = std::thread::scope(|sc| {
        let walker = {
            let (walked, merges) = (&walked, &merges);
            sc.spawn(move || -> Result<(), IndexError> {
                let repo = gix::open(path).map_err(gerr)?;
                let walk = repo
                    .rev_walk([head])
                    .with_hidden(hidden)
                    .all()
                    .map_err(gerr)?;
                for info in walk {
                    let info = info.map_err(gerr)?;
                    let n = walked.fetch_add(1, Ordering::Relaxed) + 1;
                    if opts.max_commits.is_some_and(|m| n > m) {
                        walked.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                    if info.parent_ids.len() > 1 {
                        merges.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let parent = info.parent_ids.first().copied();
                    if job_tx.send((info.id, parent)).is_err() {
                        break;
                    }
                }
                Ok(())
            })
        };
        for _ in 0..threads {
            let res_tx = res_tx.clone();
            let job_rx = &job_rx;
            sc.spawn(move || {
                let mut repo = match gix::open(path) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = res_tx.send(Err(gerr(e)));
                        return;
                    }
                };
                repo.object_cache_size_if_unset(32 * 1024 * 1024);
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((id, parent)) = job else { break };
                    if res_tx.send(commit_entry(&repo, id, parent, opts)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        for r in res_rx {
            if first_err.is_some() {
                continue; // keep draining so that the workers can finish
            }
            match r {
                Ok(done) => {
                    stats.files_diffed += done.files_diffed;
                    w.delete_term(Term::from_field_text(ix.f.id, &done.sha));
                    if let Err(e) = ix.add_entry(&w, &done.sha, &done.entry, &done.body) {
                        first_err = Some(e);
                        continue;
                    }
                    stats.indexed += 1;
                    if stats.indexed.is_multiple_of(256) {
                        progress(walked.load(Ordering::Relaxed));
                    }
                }
                Err(e) => first_err = Some(e),
            }
        }
        walker
            .join()
            .unwrap_or_else(|_| Err(IndexError::Git("the history walk panicked".into())))
    });
    walk_result?;
    if let Some(e) = first_err {
        return Err(e);
    }
    stats.walked = walked.load(Ordering::Relaxed);
    stats.merges = merges.load(Ordering::Relaxed);
    progress(stats.walked);
    w.commit()?;
    w.wait_merging_threads()?;
    ix.reload()?;
    ix.manifest.git.insert(key, head.to_string());
    ix.save_manifest()?;
    stats.seconds = t0.elapsed().as_secs_f64();
    stats.commits_per_second = if stats.seconds > 0.0 {
        stats.walked as f64 / stats.seconds
    } else {
        0.0
    };
    Ok(stats)
}

/// One indexed commit, built on a worker thread.
struct Indexed {
    sha: String,
    entry: Entry,
    body: String,
    files_diffed: usize,
}

/// The entry of the non-merge commit `id` (first parent `parent`).
fn commit_entry(
    repo: &gix::Repository,
    id: ObjectId,
    parent: Option<ObjectId>,
    opts: &GitOptions,
) -> Result<Indexed, IndexError> {
    let commit = repo
        .find_object(id)
        .map_err(gerr)?
        .try_into_commit()
        .map_err(gerr)?;
    let message = commit.message_raw_sloppy().to_str_lossy().into_owned();
    let facts = message_facts(&message);
    let mut files: BTreeSet<String> = facts.files.iter().cloned().collect();
    files.extend(facts.report_files.iter().cloned());
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut files_diffed = 0;
    if !opts.no_diffs {
        let new_tree = commit.tree_id().map_err(gerr)?.detach();
        let old_tree = parent
            .and_then(|p| repo.find_object(p).ok())
            .and_then(|o| o.try_into_commit().ok())
            .and_then(|c| c.tree_id().ok())
            .map(|t| t.detach());
        let mut changes = Vec::new();
        diff_trees(repo, old_tree, Some(new_tree), "", &mut changes, 0)?;
        for (i, (p, old, new)) in changes.iter().enumerate() {
            if i < 200 {
                files.insert(p.clone());
            }
            if i < 64 && is_source(p) {
                files_diffed += 1;
                touched.extend(functions_touched(repo, *old, *new));
            }
        }
    }
    let sha = id.to_string();
    let entry = Entry {
        cve: None,
        commits: vec![sha.clone()],
        subject: facts.subject.clone(),
        funcs: facts.funcs.clone(),
        subject_funcs: facts.subject_funcs.clone(),
        touched: touched.into_iter().collect(),
        files: files.into_iter().collect(),
        trace: facts.trace.clone(),
        trace_title: facts.trace_title.clone(),
        kinds: facts.kinds.iter().map(|k| k.as_str().to_string()).collect(),
        trace_kind: facts.trace_kind.map(|k| k.as_str().to_string()),
        titles: {
            let mut t = facts.prose_titles.clone();
            t.extend(
                facts
                    .report_titles
                    .iter()
                    .filter(|x| !facts.prose_titles.contains(x))
                    .cloned(),
            );
            t
        },
        ranges: Vec::new(),
        fixes: facts.fixes.clone(),
        syzbot: facts.syzbot,
        source: "git".into(),
    };
    let mut body = facts.prose;
    body.push('\n');
    body.push_str(&facts.report);
    Ok(Indexed {
        sha,
        entry,
        body,
        files_diffed,
    })
}

fn is_source(p: &str) -> bool {
    [".c", ".h", ".S", ".rs"].iter().any(|e| p.ends_with(e))
}

type Change = (String, Option<ObjectId>, Option<ObjectId>);

/// Lists changed blobs between two trees (recursively).
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<Change>,
    depth: usize,
) -> Result<(), IndexError> {
    if old == new || depth > 32 || out.len() > 2000 {
        return Ok(());
    }
    let entries = |id: Option<ObjectId>| -> Result<HashMap<Vec<u8>, (bool, ObjectId)>, IndexError> {
        let mut m = HashMap::new();
        if let Some(id) = id {
            let tree = repo.find_tree(id).map_err(gerr)?;
            let decoded = tree.decode().map_err(gerr)?;
            for e in decoded.entries.iter() {
                if e.mode.is_commit() {
                    continue; // submodule
                }
                m.insert(e.filename.to_vec(), (e.mode.is_tree(), e.oid.to_owned()));
            }
        }
        Ok(m)
    };
    let a = entries(old)?;
    let b = entries(new)?;
    let mut names: BTreeSet<&Vec<u8>> = a.keys().collect();
    names.extend(b.keys());
    for name in names {
        let ea = a.get(name);
        let eb = b.get(name);
        if ea.map(|x| x.1) == eb.map(|x| x.1) && ea.map(|x| x.0) == eb.map(|x| x.0) {
            continue;
        }
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        let (ta, tb) = (
            ea.filter(|x| x.0).map(|x| x.1),
            eb.filter(|x| x.0).map(|x| x.1),
        );
        if ta.is_some() || tb.is_some() {
            diff_trees(repo, ta, tb, &format!("{path}/"), out, depth + 1)?;
        }
        let (ba, bb) = (
            ea.filter(|x| !x.0).map(|x| x.1),
            eb.filter(|x| !x.0).map(|x| x.1),
        );
        if ba.is_some() || bb.is_some() {
            out.push((path, ba, bb));
        }
    }
    Ok(())
}

fn blob(repo: &gix::Repository, id: Option<ObjectId>) -> Vec<u8> {
    match id.and_then(|i| repo.find_object(i).ok()) {
        Some(o) if o.data.len() < 4 * 1024 * 1024 => o.data.clone(),
        _ => Vec::new(),
    }
}

/// Functions touched by a file change: for every hunk, the function enclosing its first changed
/// line in the old file (what git's `diff=cpp` hunk header shows), and functions whose definition
/// line is among the added lines.
fn functions_touched(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
) -> Vec<String> {
    let a = blob(repo, old);
    let b = blob(repo, new);
    if a.contains(&0) || b.contains(&0) {
        return Vec::new();
    }
    let a_lines: Vec<&[u8]> = a.lines_with_terminator().collect();
    let b_lines: Vec<&[u8]> = b.lines_with_terminator().collect();
    let input = imara_diff::InternedInput::new(a.as_slice(), b.as_slice());
    let diff = imara_diff::Diff::compute(imara_diff::Algorithm::Histogram, &input);
    let mut out = BTreeSet::new();
    for h in diff.hunks().take(200) {
        let start = h.before.start as usize;
        if let Some(f) = enclosing_function(&a_lines, start) {
            out.insert(f);
        }
        for i in h.after.start..h.after.end.min(h.after.start + 400) {
            if let Some(f) = b_lines.get(i as usize).and_then(|l| function_header(l)) {
                out.insert(f);
            }
        }
    }
    out.into_iter().collect()
}

/// Scans up from `line` (exclusive of nothing: the changed line itself counts, a changed signature
/// is a touched function) for a function header.
fn enclosing_function(lines: &[&[u8]], line: usize) -> Option<String> {
    let start = line.min(lines.len().saturating_sub(1));
    for i in (start.saturating_sub(3000)..=start).rev() {
        let l = lines.get(i)?;
        if let Some(f) = function_header(l) {
            return Some(f);
        }
        // A closing brace at column 0 ends the previous function: the change is between functions.
        if l.first() == Some(&b'}') && i != start {
            return None;
        }
    }
    None
}

/// A C function definition header at column 0: `static int foo(struct x *a,` -> `foo`.
/// Like git's `diff=cpp` funcname rule, labels, prototypes and preprocessor lines are not headers.
pub fn function_header(line: &[u8]) -> Option<String> {
    let first = *line.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let s = std::str::from_utf8(line).ok()?.trim_end();
    if s.ends_with(';') || s.ends_with(':') {
        return None;
    }
    let paren = s.find('(')?;
    let before = s[..paren].trim_end();
    let name: String = before
        .bytes()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .map(char::from)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if [
        "if", "for", "while", "switch", "return", "sizeof", "else", "do",
    ]
    .contains(&name.as_str())
    {
        return None;
    }
    // Macros that define functions name them in the first argument: SYSCALL_DEFINE3(ioctl, ...).
    if name.starts_with("SYSCALL_DEFINE") || name.starts_with("COMPAT_SYSCALL_DEFINE") {
        let arg: String = s[paren + 1..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .map(char::from)
            .collect();
        if !arg.is_empty() {
            return Some(format!("__do_sys_{arg}"));
        }
    }
    if extract::idents_in_text(&name).is_empty() && !name.contains('_') && name.len() < 3 {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::function_header;

    #[test]
    fn headers() {
        assert_eq!(
            function_header(
                b"static int __neigh_event_send(struct neighbour *neigh, struct sk_buff *skb)\n"
            )
            .as_deref(),
            Some("__neigh_event_send")
        );
        assert_eq!(
            function_header(
                b"int neigh_update(struct neighbour *neigh, const u8 *lladdr, u8 new,\n"
            )
            .as_deref(),
            Some("neigh_update")
        );
        assert_eq!(function_header(b"SYSCALL_DEFINE3(ioctl, unsigned int, fd, unsigned int, cmd, unsigned long, arg)\n").as_deref(), Some("__do_sys_ioctl"));
        assert_eq!(function_header(b"out:\n"), None);
        assert_eq!(function_header(b"int foo(void);\n"), None);
        assert_eq!(function_header(b"\tfoo(bar);\n"), None);
        assert_eq!(function_header(b"#define X(a) a\n"), None);
    }
}

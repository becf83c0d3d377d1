//! The signals a kernel engineer reads when matching a crash to a fix, as features of a
//! (crash, fix) pair ([`crate::model`]), each with its evidence:
//!
//! - functions: the crash's frames against the quoted trace (and its top frame and order), the
//!   functions the subject and the text name, and the functions the fix touched;
//! - the guilty frame (the function syzkaller's title names) against the subject and the text;
//! - the title against the titles the fix text quotes (syzbot titles are quoted verbatim);
//! - files: the guilty file (syzkaller's guilty-file rule) and the stack's other files against the
//!   record's `programFiles` and the files its text names; the same directory; the same
//!   subsystem (path prefix) as a prior;
//! - the KASAN allocation and free stacks (KMSAN's creation stack), not only the access stack;
//! - words of the crash's function names in the fix's subject and names;
//! - the crash kind against the kinds the fix text describes;
//! - the kernel version: a fix that the crashing kernel already has, or a bug introduced after
//!   it, is unlikely; a fix released soon after the crashing kernel is likely.

use crate::extract::KindTag;
use crate::model::{Features, N, WEIGHTS};
use crate::query::{CrashQuery, StackRole};
use crate::rank::Evidence;
use crate::record::Entry;
use crate::title;
use crate::version::{verdict, KVersion};
use kmortem_oops::line::generic_frame as is_generic_frame;
use std::collections::{HashMap, HashSet};

/// The directory of a source path (`net/sched/cls_tcindex.c` -> `net/sched`).
pub fn dir_of(path: &str) -> Option<&str> {
    let p = path.rfind('/')?;
    (p > 0).then(|| &path[..p])
}

/// The subsystem prefix of a source path: two components (`net/sched`, `fs/ext4`), three under
/// `drivers/`, `arch/` and `sound/` (`drivers/media/usb`, `arch/x86/kvm`). Headers under
/// `include/` name no subsystem.
pub fn subsystem_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 2 || parts[0] == "include" {
        return None;
    }
    let depth = match parts[0] {
        "drivers" | "arch" | "sound" => 3,
        _ => 2,
    };
    // The last component is the file name.
    let n = depth.min(parts.len() - 1);
    Some(parts[..n].join("/"))
}

/// A linear index of mainline releases, so that release gaps cross major numbers (4.20 -> 5.0 is
/// one release, 5.19 -> 6.0 too).
pub fn release_index(v: KVersion) -> f64 {
    let minor = v.minor as f64;
    let base = match v.major {
        0..=2 => {
            // 2.6.x is stored as minor 6000 + x.
            return if v.minor >= 6_000 {
                (v.minor - 6_000) as f64 - 40.0
            } else {
                -100.0
            };
        }
        3 => 0.0,  // 3.0 follows 2.6.39
        4 => 20.0, // 3.19 -> 4.0
        5 => 41.0, // 4.20 -> 5.0
        6 => 61.0, // 5.19 -> 6.0
        m => 61.0 + 20.0 * (m as f64 - 6.0),
    };
    base + minor
}

/// Where a kernel sits on the release line: `5.13-rc2` just before 5.13, `5.12.9` on 5.12.
fn kernel_position(v: KVersion) -> f64 {
    release_index(v) - if v.rc.is_some() { 0.5 } else { 0.0 }
}

/// Position weight of the i-th key frame: the top of the stack is the most telling.
pub(crate) fn pos_weight(i: usize) -> f64 {
    1.0 / (1.0 + 0.35 * i as f64)
}

/// One frame of the prepared query.
#[derive(Debug, Clone)]
pub(crate) struct QFrame {
    pub name: String,
    /// Position (and reliability) weight.
    pub w: f64,
}

/// What the features need from the crash, computed once per query.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Frames of the crash's own stack, with weights.
    pub frames: Vec<QFrame>,
    /// Key frames of the allocation and free stacks (KASAN), the creation stack (KMSAN).
    pub aux: Vec<QFrame>,
    pub key: Vec<String>,
    /// Inverse document frequencies by [`IdfKind`] and name.
    pub idf: [HashMap<String, f64>; 5],
    /// Distinctive words of the top key frames and the guilty file's name, with weights.
    pub words: Vec<(String, f64)>,
    pub title: Option<String>,
    pub title_func: Option<String>,
    /// Distinctive words of the title (`use-after-free`, `tcindex_set_parms`), for the subject.
    pub title_words: Vec<String>,
    pub guilty_func: Option<String>,
    pub guilty_file: Option<String>,
    /// The guilty frame's own file when it differs from the guilty file (kmemleak reports: the
    /// rule may blame the allocator's caller's file).
    pub guilty_frame_file: Option<String>,
    /// Directories and subsystems of the guilty file and the guilty frame's file.
    pub guilty_dirs: Vec<String>,
    pub guilty_subsys: Vec<String>,
    /// Files of the crash's own stack other than the guilty one, with position weights.
    pub stack_files: Vec<(String, f64)>,
    /// Files of the allocation and free stacks.
    pub aux_files: Vec<String>,
    pub kind: Option<KindTag>,
    pub kernel: Option<KVersion>,
}

impl Prepared {
    pub fn idf(&self, kind: IdfKind, name: &str) -> f64 {
        self.idf[kind as usize].get(name).copied().unwrap_or(0.0)
    }

    /// From a crash query. Document frequencies are filled by the caller ([`Prepared::keys`]).
    pub fn new(q: &CrashQuery) -> Prepared {
        let mut p = Prepared {
            kind: q.kind,
            ..Default::default()
        };
        let mut key_i = 0;
        let mut aux_i = 0;
        for fr in q.frames.iter() {
            match fr.stack {
                StackRole::Access => {
                    if p.frames.len() >= 48 {
                        continue;
                    }
                    let key = !fr.generic && fr.reliable;
                    let w = if fr.generic {
                        0.08
                    } else if !fr.reliable {
                        0.25 * pos_weight(key_i)
                    } else {
                        let w = pos_weight(key_i);
                        key_i += 1;
                        w
                    };
                    if key {
                        p.key.push(fr.function.clone());
                    }
                    p.frames.push(QFrame {
                        name: fr.function.clone(),
                        w,
                    });
                }
                StackRole::Alloc | StackRole::Free => {
                    if fr.generic || !fr.reliable || p.aux.len() >= 16 {
                        continue;
                    }
                    p.aux.push(QFrame {
                        name: fr.function.clone(),
                        w: pos_weight(aux_i),
                    });
                    aux_i += 1;
                    if let Some(f) = &fr.file {
                        if !p.aux_files.contains(f) && p.aux_files.len() < 8 {
                            p.aux_files.push(f.clone());
                        }
                    }
                }
                StackRole::Other => {}
            }
        }
        if let Some(t) = &q.title {
            let t = title::normalize(t);
            p.title_func = title::function_of(&t);
            const STOP: &[&str] = &[
                "in",
                "read",
                "write",
                "bug",
                "kasan",
                "kmsan",
                "kcsan",
                "ubsan",
                "info",
                "of",
                "at",
                "kernel",
                "warning",
                "task",
                "fault",
                "general",
                "protection",
                "unable",
                "to",
                "handle",
                "paging",
                "request",
                "pointer",
                "dereference",
                "null",
                "possible",
                "detected",
                "value",
                "size",
                "addr",
            ];
            p.title_words = t
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .filter(|w| w.len() > 2 && !STOP.contains(w))
                .map(String::from)
                .fold(Vec::new(), |mut v, w| {
                    if !v.contains(&w) {
                        v.push(w);
                    }
                    v
                });
            p.title = Some(t);
        }
        p.guilty_func = q
            .guilty_frame
            .clone()
            .or_else(|| p.title_func.clone())
            .or_else(|| p.key.first().cloned());
        // The guilty file: the parser's; else the guilty frame's own file.
        p.guilty_file = q.guilty_file.clone().or_else(|| {
            let g = p.guilty_func.as_deref()?;
            q.frames
                .iter()
                .find(|f| f.function == g)
                .and_then(|f| f.file.clone())
        });
        p.guilty_frame_file = p.guilty_func.as_deref().and_then(|g| {
            q.frames
                .iter()
                .find(|f| f.function == g)
                .and_then(|f| f.file.clone())
                .filter(|f| Some(f) != p.guilty_file.as_ref())
        });
        for g in [&p.guilty_file, &p.guilty_frame_file].into_iter().flatten() {
            if let Some(d) = dir_of(g) {
                if !p.guilty_dirs.iter().any(|x| x == d) {
                    p.guilty_dirs.push(d.to_string());
                }
            }
            if let Some(sub) = subsystem_of(g) {
                if !p.guilty_subsys.contains(&sub) {
                    p.guilty_subsys.push(sub);
                }
            }
        }
        let mut fi = 0;
        for fr in q.frames.iter().filter(|f| f.stack == StackRole::Access) {
            let Some(f) = &fr.file else { continue };
            if Some(f) == p.guilty_file.as_ref()
                || Some(f) == p.guilty_frame_file.as_ref()
                || f.ends_with(".h")
                || p.stack_files.iter().any(|(x, _)| x == f)
            {
                continue;
            }
            p.stack_files.push((f.clone(), pos_weight(fi)));
            fi += 1;
            if p.stack_files.len() >= 16 {
                break;
            }
        }
        for (i, name) in p.key.iter().take(3).enumerate() {
            for wd in frame_words(name) {
                if !p.words.iter().any(|(x, _)| *x == wd) {
                    p.words.push((wd, pos_weight(i)));
                }
            }
        }
        if let Some(stem) = p
            .guilty_file
            .as_deref()
            .and_then(|f| f.rsplit('/').next())
            .and_then(|b| b.split('.').next())
        {
            for wd in frame_words(&stem.replace('-', "_")) {
                if !p.words.iter().any(|(x, _)| *x == wd) {
                    p.words.push((wd, 0.8));
                }
            }
        }
        p.kernel = q
            .kernel
            .as_ref()
            .and_then(|k| k.upstream.as_deref())
            .and_then(KVersion::parse);
        p
    }

    /// The document frequencies the features need: `(field, term, idf kind, idf name)`.
    pub fn keys(&self) -> Vec<(DfField, String, IdfKind, String)> {
        let mut out = Vec::new();
        for f in self.frames.iter().chain(&self.aux) {
            out.push((
                DfField::Functions,
                f.name.clone(),
                IdfKind::Func,
                f.name.clone(),
            ));
        }
        if let Some(g) = &self.guilty_func {
            out.push((DfField::Functions, g.clone(), IdfKind::Func, g.clone()));
        }
        for g in [&self.guilty_file, &self.guilty_frame_file]
            .into_iter()
            .flatten()
        {
            out.push((DfField::Files, g.clone(), IdfKind::File, g.clone()));
        }
        for (f, _) in &self.stack_files {
            out.push((DfField::Files, f.clone(), IdfKind::File, f.clone()));
        }
        for f in &self.aux_files {
            out.push((DfField::Files, f.clone(), IdfKind::File, f.clone()));
        }
        for w in &self.title_words {
            // `use-after-free` is three subject tokens: its first stands for it.
            let t = w.split('-').next().unwrap_or(w).to_string();
            out.push((DfField::Subject, t, IdfKind::TitleWord, w.clone()));
        }
        for (w, _) in &self.words {
            out.push((DfField::Subject, w.clone(), IdfKind::SubjWord, w.clone()));
            out.push((DfField::Body, w.clone(), IdfKind::BodyWord, w.clone()));
        }
        out
    }
}

/// What an inverse document frequency is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdfKind {
    Func = 0,
    File = 1,
    SubjWord = 2,
    BodyWord = 3,
    TitleWord = 4,
}

/// Which field a document frequency is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DfField {
    /// Max over the function fields (trace, idents, subject functions, touched).
    Functions,
    Files,
    Subject,
    Body,
}

fn kind_names(k: &[KindTag]) -> String {
    k.iter().map(|x| x.as_str()).collect::<Vec<_>>().join("/")
}

/// Longest common subsequence length of two short sequences.
fn lcs(a: &[&str], b: &[&str]) -> usize {
    let (n, m) = (a.len().min(32), b.len().min(64));
    let mut dp = vec![0usize; (n + 1) * (m + 1)];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * (m + 1) + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * (m + 1) + j - 1] + 1
            } else {
                dp[(i - 1) * (m + 1) + j].max(dp[i * (m + 1) + j - 1])
            };
        }
    }
    dp[n * (m + 1) + m]
}

/// Collects evidence per feature.
struct Ev {
    x: Features,
    ev: Vec<Evidence>,
}

impl Ev {
    fn add(&mut self, feature: &'static str, value: f64, matched: Vec<String>, note: String) {
        if value == 0.0 {
            return;
        }
        let i = crate::model::index(feature).unwrap_or(0);
        self.x.0[i] += value;
        self.ev.push(Evidence {
            kind: feature.to_string(),
            matched,
            value: round2(value),
            weight: 0.0,
            note,
        });
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The features of one fix for a prepared crash, with evidence (weights filled from [`WEIGHTS`]).
pub(crate) fn features(p: &Prepared, e: &Entry, bm25: f64) -> (Features, Vec<Evidence>) {
    let mut ev = Ev {
        x: Features::default(),
        ev: Vec::new(),
    };
    let trace: HashSet<&str> = e.trace.iter().map(String::as_str).collect();
    let subj: HashSet<&str> = e.subject_funcs.iter().map(String::as_str).collect();
    let prose: HashSet<&str> = e.funcs.iter().map(String::as_str).collect();
    let touched: HashSet<&str> = e.touched.iter().map(String::as_str).collect();
    // Functions of the crash's own stack.
    let sets: [(&'static str, &HashSet<&str>, &str); 4] = [
        (
            "trace",
            &trace,
            "frames of the crash found in the trace the fix quotes",
        ),
        (
            "subject",
            &subj,
            "functions of the crash named in the fix's subject",
        ),
        (
            "text",
            &prose,
            "functions of the crash named in the fix's message",
        ),
        (
            "touched",
            &touched,
            "functions of the crash the fix changes",
        ),
    ];
    for (feat, set, note) in sets {
        let mut v = 0.0;
        let mut m = Vec::new();
        for f in &p.frames {
            if set.contains(f.name.as_str()) {
                v += f.w * p.idf(IdfKind::Func, &f.name);
                m.push(f.name.clone());
            }
        }
        ev.add(feat, v, m, note.into());
    }
    // The quoted trace against the crash's top five key frames only: deep frames are the
    // syscall and driver-core plumbing that many quoted traces share.
    {
        let mut v = 0.0;
        let mut m = Vec::new();
        for (i, k) in p.key.iter().take(5).enumerate() {
            if trace.contains(k.as_str()) {
                v += pos_weight(i) * p.idf(IdfKind::Func, k);
                m.push(k.clone());
            }
        }
        ev.add(
            "trace_top",
            v,
            m,
            "the crash's top frames found in the trace the fix quotes".into(),
        );
    }
    // The quoted trace's top frame and order.
    if !e.trace.is_empty() && !p.key.is_empty() {
        let tkey: Vec<&str> = e
            .trace
            .iter()
            .map(String::as_str)
            .filter(|f| !is_generic_frame(f))
            .collect();
        if let Some(tt) = tkey.first() {
            // The crash may have lost its top frames (inlining, another config): the quoted top
            // frame within the crash's first three key frames counts.
            if p.key.iter().take(3).any(|f| f == tt) {
                let same = p.key.first().map(String::as_str) == Some(*tt);
                ev.add(
                    "top_frame",
                    p.idf(IdfKind::Func, tt),
                    vec![(*tt).to_string()],
                    if same {
                        "same top frame as the quoted trace".into()
                    } else {
                        "the quoted trace's top frame is near the crash's top".into()
                    },
                );
            }
        }
        let qkey: Vec<&str> = p.key.iter().take(24).map(String::as_str).collect();
        let l = lcs(&qkey, &tkey);
        if l >= 2 {
            ev.add(
                "frame_order",
                (l - 1) as f64,
                vec![format!("{l} frames in the same order")],
                "the crash's frames appear in the quoted trace in the same order".into(),
            );
        }
    }
    // The guilty frame.
    if let Some(g) = &p.guilty_func {
        if subj.contains(g.as_str()) {
            ev.add(
                "guilty_subject",
                1.0,
                vec![g.clone()],
                "the crash's guilty function is named in the fix's subject".into(),
            );
        } else if prose.contains(g.as_str()) {
            ev.add(
                "guilty_text",
                1.0,
                vec![g.clone()],
                "the crash's guilty function is named in the fix's message".into(),
            );
        }
    }
    // Titles.
    if let Some(t) = &p.title {
        if e.titles.iter().any(|x| x == t) {
            ev.add(
                "title",
                1.0,
                vec![t.clone()],
                "the fix text quotes the crash's title".into(),
            );
        } else if let Some(tf) = &p.title_func {
            if let Some(x) = e
                .titles
                .iter()
                .find(|x| title::function_of(x).as_deref() == Some(tf.as_str()))
            {
                ev.add(
                    "title_function",
                    1.0,
                    vec![x.clone()],
                    "the fix text quotes a crash title in the same function".into(),
                );
            }
        }
    }
    // The title's words in the subject (`KASAN: use-after-free Read in gfs2_glock_shrink_scan`
    // against `gfs2: Fix use-after-free in gfs2_glock_shrink_scan`).
    {
        let low = e.subject.to_ascii_lowercase();
        let mut v = 0.0;
        let mut m = Vec::new();
        for w in &p.title_words {
            let hit = low.match_indices(w.as_str()).any(|(i, _)| {
                let b = low.as_bytes();
                let before = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                let j = i + w.len();
                let after = j >= b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'_');
                before && after
            });
            if hit {
                v += p.idf(IdfKind::TitleWord, w);
                m.push(w.clone());
            }
        }
        ev.add(
            "title_words",
            v,
            m,
            "words of the crash's title in the fix's subject".into(),
        );
    }
    // Files.
    let efiles: HashSet<&str> = e.files.iter().map(String::as_str).collect();
    if let Some(g) = [&p.guilty_file, &p.guilty_frame_file]
        .into_iter()
        .flatten()
        .find(|g| efiles.contains(g.as_str()))
    {
        ev.add(
            "guilty_file",
            1.0,
            vec![g.clone()],
            "the crash's guilty file is one the fix changes or names".into(),
        );
    }
    {
        let mut v = 0.0;
        let mut m = Vec::new();
        for (f, w) in &p.stack_files {
            if efiles.contains(f.as_str()) {
                v += w * p.idf(IdfKind::File, f);
                m.push(f.clone());
            }
        }
        ev.add(
            "stack_files",
            v,
            m,
            "source files of the crash's stack among the fix's files".into(),
        );
    }
    if let Some(d) = p
        .guilty_dirs
        .iter()
        .find(|d| e.files.iter().any(|f| dir_of(f) == Some(d.as_str())))
    {
        {
            ev.add(
                "directory",
                1.0,
                vec![d.clone()],
                "the fix changes a file in the guilty file's directory".into(),
            );
        }
    }
    if let Some(s) = p.guilty_subsys.iter().find(|s| {
        e.files
            .iter()
            .any(|f| subsystem_of(f).as_deref() == Some(s.as_str()))
    }) {
        {
            ev.add(
                "subsystem",
                1.0,
                vec![s.clone()],
                "the fix is in the guilty file's subsystem".into(),
            );
        }
    }
    // Allocation and free stacks.
    {
        let mut v = 0.0;
        let mut m = Vec::new();
        for f in &p.aux {
            let n = f.name.as_str();
            if trace.contains(n) || subj.contains(n) || prose.contains(n) || touched.contains(n) {
                v += f.w * p.idf(IdfKind::Func, n);
                m.push(f.name.clone());
            }
        }
        for f in &p.aux_files {
            if efiles.contains(f.as_str()) && p.guilty_file.as_ref() != Some(f) {
                v += 0.5 * p.idf(IdfKind::File, f);
                m.push(f.clone());
            }
        }
        ev.add(
            "alloc_free",
            v,
            m,
            "functions or files of the allocation and free stacks in the fix".into(),
        );
    }
    // Words of the crash's function names.
    {
        let subj_words: HashSet<String> = words_of(&e.subject);
        let mut name_words: HashSet<String> = HashSet::new();
        for x in e.funcs.iter().chain(&e.subject_funcs).chain(&e.touched) {
            name_words.extend(x.split('_').map(|w| w.to_ascii_lowercase()));
        }
        for f in &e.files {
            if let Some(stem) = f.rsplit('/').next().and_then(|b| b.split('.').next()) {
                name_words.extend(
                    stem.split(['_', '-'])
                        .map(|w| w.to_ascii_lowercase())
                        .filter(|w| !w.is_empty()),
                );
            }
        }
        let (mut sv, mut sm, mut nv, mut nm) = (0.0, Vec::new(), 0.0, Vec::new());
        for (wd, pw) in &p.words {
            if subj_words.contains(wd) {
                sv += pw * p.idf(IdfKind::SubjWord, wd);
                sm.push(wd.clone());
            } else if name_words.contains(wd) {
                nv += pw * p.idf(IdfKind::BodyWord, wd);
                nm.push(wd.clone());
            }
        }
        ev.add(
            "subject_words",
            sv,
            sm,
            "words of the crash's function names in the fix's subject".into(),
        );
        ev.add(
            "name_words",
            nv,
            nm,
            "words of the crash's function names in the names and files of the fix".into(),
        );
    }
    // Crash kind.
    if let Some(k) = p.kind {
        let mut ekinds: Vec<KindTag> = e.kinds.iter().filter_map(|s| KindTag::parse(s)).collect();
        if let Some(tk) = e.trace_kind.as_deref().and_then(KindTag::parse) {
            if !ekinds.contains(&tk) {
                ekinds.push(tk);
            }
        }
        if let Some(x) = ekinds.iter().find(|x| k.compatible(**x)) {
            ev.add(
                "kind_agrees",
                1.0,
                vec![x.as_str().to_string()],
                format!("the fix is about a {}, like the crash", x.as_str()),
            );
        } else if !ekinds.is_empty() {
            // A WARNING or BUG_ON is often the symptom of a bug the text names otherwise.
            let v = if matches!(k, KindTag::Warning | KindTag::BugOn) {
                0.5
            } else {
                1.0
            };
            ev.add(
                "kind_differs",
                v,
                ekinds.iter().map(|x| x.as_str().to_string()).collect(),
                format!(
                    "the fix is about {}, the crash is a {}",
                    kind_names(&ekinds),
                    k.as_str()
                ),
            );
        }
    }
    // Kernel version.
    if let (Some(kv), false) = (p.kernel, e.ranges.is_empty()) {
        version_features(&mut ev, kv, e);
    }
    if bm25 > 0.0 {
        ev.add(
            "fulltext",
            (1.0 + bm25).ln(),
            vec![],
            "full-text score of the crash's names in the fix".into(),
        );
    }
    let mut x = ev.x;
    for v in x.0.iter_mut() {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
    for e in ev.ev.iter_mut() {
        if let Some(i) = crate::model::index(&e.kind) {
            e.weight = round2(WEIGHTS[i] * e.value);
        }
    }
    (x, ev.ev)
}

fn version_features(ev: &mut Ev, kv: KVersion, e: &Entry) {
    let kid = crate::version::KernelId {
        release: kv.to_string(),
        upstream: Some(kv.to_string()),
        base: Some(kv.to_string()),
        reason: None,
    };
    let v = verdict(&kid, &e.ranges);
    let mainline = e
        .ranges
        .iter()
        .filter_map(|r| r.fixed.as_deref().and_then(KVersion::parse))
        .filter(|f| f.is_mainline())
        .min()
        .or_else(|| {
            e.ranges
                .iter()
                .filter_map(|r| r.fixed.as_deref().and_then(KVersion::parse))
                .min()
        });
    match v.status.as_str() {
        "fixed" => ev.add(
            "version_has_fix",
            1.0,
            vec![v.fixed_in.clone().unwrap_or_default()],
            format!("kernel {kv} already has this fix ({})", v.reason),
        ),
        "not affected" => ev.add(
            "version_before_bug",
            1.0,
            vec![kv.to_string()],
            format!("kernel {kv} predates the bug ({})", v.reason),
        ),
        "affected" => {
            // How long after this kernel the fix came, in mainline releases: from the mainline
            // fix for a mainline or -rc kernel; for a stable kernel with a fix on its branch,
            // from the patch levels between them (about ten per mainline release).
            let branch_fix = e
                .ranges
                .iter()
                .filter_map(|r| r.fixed.as_deref().and_then(KVersion::parse))
                .filter(|f| !f.is_mainline() && f.branch() == kv.branch())
                .min();
            let gap = match (kv.patch, branch_fix, mainline) {
                (Some(kp), Some(bf), _) => {
                    Some((bf.patch.unwrap_or(0).saturating_sub(kp)) as f64 / 10.0)
                }
                (_, _, Some(mf)) => Some((release_index(mf) - kernel_position(kv)).max(0.0)),
                _ => None,
            };
            if let Some(gap) = gap {
                let to = branch_fix
                    .filter(|_| kv.patch.is_some())
                    .or(mainline)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let note =
                    format!("kernel {kv} is affected; the fix ({to}) came {gap:.1} releases later");
                ev.add(
                    "version_near",
                    (-gap / 2.0).exp(),
                    vec![format!("{kv} -> {to}")],
                    note.clone(),
                );
                ev.add(
                    "version_recent",
                    (-gap / 8.0).exp(),
                    vec![format!("{kv} -> {to}")],
                    note,
                );
            }
        }
        _ => {}
    }
}

fn words_of(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|x| !x.is_empty())
        .map(|x| x.to_ascii_lowercase())
        .collect()
}

/// The score of a feature vector under the built-in weights.
pub(crate) fn score(x: &Features) -> f64 {
    x.score(&WEIGHTS)
}

const _: () = assert!(N == 26);

/// Distinctive words of a function name: `kyber_bio_merge` -> `kyber`, `bio`, `merge`, minus the
/// verbs and nouns every subsystem uses.
pub(crate) fn frame_words(name: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "get",
        "set",
        "put",
        "add",
        "del",
        "init",
        "exit",
        "alloc",
        "free",
        "read",
        "write",
        "open",
        "close",
        "handle",
        "handler",
        "process",
        "core",
        "common",
        "func",
        "work",
        "data",
        "start",
        "stop",
        "update",
        "check",
        "create",
        "destroy",
        "release",
        "register",
        "unregister",
        "send",
        "recv",
        "xmit",
        "poll",
        "queue",
        "new",
        "dev",
        "device",
        "irq",
        "lock",
        "unlock",
        "fix",
        "for",
        "the",
        "and",
        "sys",
        "ops",
        "cb",
        "fn",
        "one",
        "all",
        "list",
        "buf",
        "len",
        "info",
        "ctx",
        "msg",
        "cmd",
        "req",
        "resp",
        "map",
        "unmap",
        "submit",
        "complete",
        "do",
        "try",
        "out",
        "fault",
        "bug",
        "use",
        "after",
        "null",
        "pointer",
        "in",
        "of",
        "to",
        "from",
    ];
    name.split('_')
        .map(|x| x.to_ascii_lowercase())
        .filter(|x| {
            x.len() >= 3 && !x.bytes().all(|b| b.is_ascii_digit()) && !STOP.contains(&x.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_releases() {
        assert_eq!(dir_of("net/sched/cls_tcindex.c"), Some("net/sched"));
        assert_eq!(dir_of("foo.c"), None);
        assert_eq!(
            subsystem_of("drivers/media/usb/dvb-usb/gp8psk.c").as_deref(),
            Some("drivers/media/usb")
        );
        assert_eq!(
            subsystem_of("net/sched/cls_tcindex.c").as_deref(),
            Some("net/sched")
        );
        assert_eq!(subsystem_of("include/linux/skbuff.h"), None);
        assert_eq!(subsystem_of("fs/io-wq.c").as_deref(), Some("fs"));
        let v = |s| KVersion::parse(s).unwrap();
        assert_eq!(release_index(v("5.0")) - release_index(v("4.20")), 1.0);
        assert_eq!(release_index(v("6.0")) - release_index(v("5.19")), 1.0);
        assert_eq!(release_index(v("4.0")) - release_index(v("3.19")), 1.0);
        assert_eq!(release_index(v("3.0")) - release_index(v("2.6.39")), 1.0);
        assert!(kernel_position(v("5.13-rc2")) < release_index(v("5.13")));
        assert_eq!(kernel_position(v("5.12.9")), release_index(v("5.12")));
    }
}

//! The on-disk fix index: tantivy for the text and the term lookups, a stored JSON [`Entry`] per
//! document for the structured part, and a manifest for incremental imports.
//!
//! Layout under the home directory (`$KMORTEM_HOME`, default `~/.local/share/kmortem`):
//! `fixes/tantivy/` (the index) and `fixes/manifest.json` (what was imported from where).

use crate::record::{cve_record, Entry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING, TEXT,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Errors of the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no fix index at {0} (run `kmortem fixes import PATH` first)")]
    Missing(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("query: {0}")]
    Query(String),
    #[error("manifest {0}: {1}")]
    Manifest(PathBuf, serde_json::Error),
    #[error("{0} is not a kernel vulns repository (no cve/published/ directory)")]
    NotVulns(PathBuf),
    #[error("git: {0}")]
    Git(String),
    #[error("the fix index at {} was built by another kmortem version (schema {found}, this one reads {SCHEMA_VERSION}): re-run `kmortem fixes import PATH`", dir.display())]
    Schema { dir: PathBuf, found: u32 },
    #[error("the fix index at {} is damaged ({why}): remove it and re-run `kmortem fixes import PATH`", dir.display())]
    Corrupt { dir: PathBuf, why: String },
}

impl IndexError {
    /// A search engine error while reading an index that opened: the files are damaged.
    pub(crate) fn damaged(self, dir: &Path) -> IndexError {
        match self {
            IndexError::Tantivy(e) => IndexError::Corrupt {
                dir: dir.to_path_buf(),
                why: one_line(&e.to_string()),
            },
            other => other,
        }
    }
}

/// The first line of an error message, trimmed to 200 bytes (tantivy's can be long).
pub(crate) fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    let mut end = l.len().min(200);
    while !l.is_char_boundary(end) {
        end -= 1;
    }
    l[..end].to_string()
}

/// The default home: `$KMORTEM_HOME`, else `$XDG_DATA_HOME/kmortem`, else `~/.local/share/kmortem`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("KMORTEM_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("kmortem");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/kmortem")
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub source: Field,
    pub commit: Field,
    pub subject: Field,
    pub body: Field,
    pub idents: Field,
    pub subj: Field,
    pub touched: Field,
    pub trace: Field,
    pub files: Field,
    /// Directories of the files (`net/sched`), for the subsystem prior.
    pub dirs: Field,
    /// Normalized quoted crash titles ([`crate::title::normalize`]).
    pub titles: Field,
    pub data: Field,
}

/// 2: `dirs` and `titles` fields, `Entry::titles`.
pub(crate) const SCHEMA_VERSION: u32 = 2;

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let raw = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let f = Fields {
        id: b.add_text_field("id", STRING | STORED),
        source: b.add_text_field("source", STRING),
        commit: b.add_text_field("commit", STRING),
        subject: b.add_text_field("subject", TEXT),
        body: b.add_text_field("body", TEXT),
        idents: b.add_text_field("idents", raw.clone()),
        subj: b.add_text_field("subj", raw.clone()),
        touched: b.add_text_field("touched", raw.clone()),
        trace: b.add_text_field("trace", raw.clone()),
        files: b.add_text_field("files", raw.clone()),
        dirs: b.add_text_field("dirs", raw.clone()),
        titles: b.add_text_field("titles", raw),
        data: b.add_text_field("data", STORED),
    };
    (b.build(), f)
}

/// What the manifest remembers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// Quoted traces were left out of the index (evaluation only).
    pub withhold_traces: bool,
    /// Per CVE id: signature of its files (size and mtime of .json/.sha1/.dyad).
    pub cve: BTreeMap<String, String>,
    /// Per git repository (canonical path): the last indexed HEAD commit.
    pub git: BTreeMap<String, String>,
}

/// Options of a CVE import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Leave quoted traces out (for the "nobody quoted it yet" evaluation).
    pub withhold_traces: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportStats {
    pub scanned: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Records that could not be read (bad JSON, no description), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Records imported with a part left out (a bad `.dyad`), with the reason.
    pub warnings: Vec<(String, String)>,
    pub seconds: f64,
}

/// The fix index.
pub struct FixIndex {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub(crate) f: Fields,
    dir: PathBuf,
    pub(crate) manifest: Manifest,
    /// Parsed entries by document address (segment, doc): a warm index parses each stored JSON
    /// once. Cleared whenever the reader reloads.
    pub(crate) cache: EntryCache,
}

/// See [`FixIndex::cache`].
pub(crate) type EntryCache = std::sync::Mutex<std::collections::HashMap<(u32, u32), Arc<Entry>>>;

impl FixIndex {
    fn paths(home: &Path) -> (PathBuf, PathBuf) {
        let d = home.join("fixes");
        (d.join("tantivy"), d.join("manifest.json"))
    }

    /// Opens the index under `home`, creating it if missing.
    pub fn open_or_create(home: &Path) -> Result<FixIndex, IndexError> {
        let (tdir, mpath) = Self::paths(home);
        let (schema, f) = schema();
        let mut manifest: Manifest = match std::fs::read(&mpath) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| IndexError::Manifest(mpath.clone(), e))?
            }
            Err(_) => Manifest::default(),
        };
        let fresh = manifest.schema_version != SCHEMA_VERSION || !tdir.join("meta.json").exists();
        if fresh {
            if tdir.exists() {
                std::fs::remove_dir_all(&tdir).map_err(|e| IndexError::Io(tdir.clone(), e))?;
            }
            manifest = Manifest {
                schema_version: SCHEMA_VERSION,
                ..Default::default()
            };
        }
        std::fs::create_dir_all(&tdir).map_err(|e| IndexError::Io(tdir.clone(), e))?;
        let index = if fresh {
            Index::create_in_dir(&tdir, schema)?
        } else {
            Index::open_in_dir(&tdir)?
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(FixIndex {
            index,
            reader,
            f,
            dir: home.join("fixes"),
            manifest,
            cache: Default::default(),
        })
    }

    /// Opens an existing index under `home` for queries.
    pub fn open(home: &Path) -> Result<FixIndex, IndexError> {
        let (tdir, mpath) = Self::paths(home);
        if !tdir.join("meta.json").exists() {
            return Err(IndexError::Missing(home.to_path_buf()));
        }
        let manifest: Manifest = match std::fs::read(&mpath) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| IndexError::Manifest(mpath.clone(), e))?
            }
            Err(e) => return Err(IndexError::Io(mpath, e)),
        };
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(IndexError::Schema {
                dir: home.join("fixes"),
                found: manifest.schema_version,
            });
        }
        let index = Index::open_in_dir(&tdir).map_err(|e| IndexError::Corrupt {
            dir: tdir.clone(),
            why: one_line(&e.to_string()),
        })?;
        let (schema, f) = schema();
        if index.schema() != schema {
            return Err(IndexError::Corrupt {
                dir: tdir.clone(),
                why: "its fields are not the ones this kmortem writes".into(),
            });
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| IndexError::Corrupt {
                dir: tdir.clone(),
                why: one_line(&e.to_string()),
            })?;
        Ok(FixIndex {
            index,
            reader,
            f,
            dir: home.join("fixes"),
            manifest,
            cache: Default::default(),
        })
    }

    /// Number of documents.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes on disk.
    pub fn disk_size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir)
    }
    /// The index's directory (`HOME/fixes`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn save_manifest(&self) -> Result<(), IndexError> {
        let (_, mpath) = Self::paths(self.dir.parent().unwrap_or(Path::new(".")));
        let tmp = mpath.with_extension("json.tmp");
        let body = serde_json::to_vec(&self.manifest)
            .map_err(|e| IndexError::Manifest(mpath.clone(), e))?;
        std::fs::write(&tmp, body).map_err(|e| IndexError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &mpath).map_err(|e| IndexError::Io(mpath.clone(), e))
    }

    pub(crate) fn writer(&self) -> Result<IndexWriter, IndexError> {
        Ok(self.index.writer(64 * 1024 * 1024)?)
    }

    /// Adds one entry (the caller deletes an older version first).
    pub(crate) fn add_entry(
        &self,
        w: &IndexWriter,
        id: &str,
        e: &Entry,
        body: &str,
    ) -> Result<(), IndexError> {
        let f = self.f;
        let mut d = doc!(
            f.id => id,
            f.source => e.source.as_str(),
            f.subject => e.subject.as_str(),
            f.body => body,
            f.data => serde_json::to_string(e).unwrap_or_default(),
        );
        for c in &e.commits {
            d.add_text(f.commit, c);
            if c.len() > 12 {
                d.add_text(f.commit, &c[..12]);
            }
        }
        for x in &e.funcs {
            d.add_text(f.idents, x);
        }
        for x in &e.subject_funcs {
            d.add_text(f.subj, x);
        }
        for x in &e.touched {
            d.add_text(f.touched, x);
        }
        for x in &e.trace {
            d.add_text(f.trace, x);
        }
        let mut dirs: Vec<&str> = Vec::new();
        for x in &e.files {
            d.add_text(f.files, x);
            if let Some(base) = x.rsplit('/').next() {
                if base != x {
                    d.add_text(f.files, base);
                }
            }
            if let Some(dir) = crate::signals::dir_of(x) {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                    d.add_text(f.dirs, dir);
                }
            }
        }
        for t in &e.titles {
            d.add_text(f.titles, t);
        }
        w.add_document(d)?;
        Ok(())
    }

    /// Imports (or re-imports) the CVE records of a kernel `vulns` repository clone. Only records
    /// whose files changed (size or mtime) are re-read; records gone from the tree are removed.
    pub fn import_cves(
        &mut self,
        vulns: &Path,
        opts: ImportOptions,
    ) -> Result<ImportStats, IndexError> {
        let t0 = Instant::now();
        let published = vulns.join("cve/published");
        if !published.is_dir() {
            return Err(IndexError::NotVulns(vulns.to_path_buf()));
        }
        if opts.withhold_traces != self.manifest.withhold_traces && !self.manifest.cve.is_empty() {
            // A different extraction mode: re-read everything.
            self.manifest.cve.clear();
            let mut w = self.writer()?;
            w.delete_term(Term::from_field_text(self.f.source, "cve"));
            w.commit()?;
        }
        self.manifest.withhold_traces = opts.withhold_traces;
        let mut stats = ImportStats::default();
        // Scan: id -> (json path, signature).
        let mut found: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        let years =
            std::fs::read_dir(&published).map_err(|e| IndexError::Io(published.clone(), e))?;
        for y in years.flatten() {
            let ydir = y.path();
            if !ydir.is_dir() {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&ydir) else {
                continue;
            };
            for ent in rd.flatten() {
                let name = ent.file_name();
                let name = name.to_string_lossy();
                let Some(id) = name.strip_suffix(".json") else {
                    continue;
                };
                if !id.starts_with("CVE-") {
                    continue;
                }
                let json = ent.path();
                let mut sig = String::new();
                for ext in ["json", "sha1", "dyad"] {
                    let p = ydir.join(format!("{id}.{ext}"));
                    match std::fs::metadata(&p) {
                        Ok(m) => {
                            let mt = m
                                .modified()
                                .ok()
                                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                                .unwrap_or(Duration::ZERO);
                            sig.push_str(&format!(
                                "{}:{}.{};",
                                m.len(),
                                mt.as_secs(),
                                mt.subsec_nanos()
                            ));
                        }
                        Err(_) => sig.push_str("-;"),
                    }
                }
                found.insert(id.to_string(), (json, sig));
            }
        }
        stats.scanned = found.len();
        let todo: Vec<(&String, &PathBuf, &String, bool)> = found
            .iter()
            .filter_map(|(id, (p, sig))| match self.manifest.cve.get(id) {
                Some(old) if old == sig => None,
                Some(_) => Some((id, p, sig, true)),
                None => Some((id, p, sig, false)),
            })
            .collect();
        stats.unchanged = stats.scanned - todo.len();
        let removed: Vec<String> = self
            .manifest
            .cve
            .keys()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect();
        if todo.is_empty() && removed.is_empty() {
            self.save_manifest()?;
            stats.seconds = t0.elapsed().as_secs_f64();
            return Ok(stats);
        }
        let mut w = self.writer()?;
        for id in &removed {
            w.delete_term(Term::from_field_text(self.f.id, id));
            self.manifest.cve.remove(id);
            stats.removed += 1;
        }
        // Read and extract on all cores; the writer has its own indexing threads.
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let chunk = todo.len().div_ceil(threads).max(1);
        let results: Vec<Vec<ReadResult>> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(id, p, sig, upd)| {
                                let r = read_record(p, opts.withhold_traces);
                                ((*id).clone(), r, *upd, (*sig).clone())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (id, r, upd, sig) in results.into_iter().flatten() {
            if upd {
                w.delete_term(Term::from_field_text(self.f.id, &id));
            }
            match r {
                Ok((entry, body, warning)) => {
                    self.add_entry(&w, &id, &entry, &body)?;
                    if upd {
                        stats.updated += 1;
                    } else {
                        stats.added += 1;
                    }
                    if let Some(why) = warning {
                        stats.warnings.push((id.clone(), why));
                    }
                    self.manifest.cve.insert(id, sig);
                }
                Err(e) => {
                    // Not remembered: the next import tries (and lists) it again.
                    if upd {
                        self.manifest.cve.remove(&id);
                        stats.removed += 1;
                    }
                    stats.skipped.push((id.clone(), e));
                }
            }
        }
        w.commit()?;
        w.wait_merging_threads()?;
        self.reload()?;
        self.save_manifest()?;
        stats.seconds = t0.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Looks up the stored entry of a document id (CVE id or commit SHA).
    pub fn get(&self, id: &str) -> Result<Option<Entry>, IndexError> {
        let searcher = self.reader.searcher();
        let q = tantivy::query::TermQuery::new(
            Term::from_field_text(self.f.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&q, &tantivy::collector::TopDocs::with_limit(1))?;
        match top.first() {
            Some((_, addr)) => {
                let d: TantivyDocument = searcher.doc(*addr)?;
                Ok(self.entry_of(&d))
            }
            None => Ok(None),
        }
    }

    /// Reloads the reader after a commit (and forgets the parsed entries).
    pub(crate) fn reload(&self) -> Result<(), IndexError> {
        self.reader.reload()?;
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
        Ok(())
    }

    /// The entry at a document address, parsed once.
    pub(crate) fn entry_at(
        &self,
        searcher: &tantivy::Searcher,
        addr: tantivy::DocAddress,
    ) -> Result<Option<Arc<Entry>>, IndexError> {
        let key = (addr.segment_ord, addr.doc_id);
        if let Some(e) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(Some(e));
        }
        let d: TantivyDocument = searcher.doc(addr)?;
        let Some(e) = self.entry_of(&d).map(Arc::new) else {
            return Ok(None);
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, e.clone());
        }
        Ok(Some(e))
    }

    pub(crate) fn entry_of(&self, d: &TantivyDocument) -> Option<Entry> {
        let s = d.get_first(self.f.data).and_then(|v| v.as_str())?;
        serde_json::from_str(s).ok()
    }
}

/// (id, entry, body and a warning, or the reason it was skipped; is-an-update; signature)
type ReadResult = (String, Result<Record, String>, bool, String);
/// An entry, its full text, and what was wrong with it but did not stop the import.
type Record = (Entry, String, Option<String>);

fn read_record(json: &Path, withhold: bool) -> Result<Record, String> {
    let bytes = std::fs::read(json).map_err(|e| e.to_string())?;
    let sha1 = std::fs::read(json.with_extension("sha1"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let dyad = std::fs::read(json.with_extension("dyad"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let rec = cve_record(&bytes, sha1.as_deref(), dyad.as_deref(), withhold)
        .map_err(|e| e.to_string())?;
    // A bad .dyad leaves the JSON's version ranges in charge; say so.
    let warning = dyad
        .as_deref()
        .and_then(|d| crate::version::parse_dyad(d).err())
        .map(|e| format!(".dyad ignored ({e}); versions from the JSON"));
    let mut body = rec.prose;
    if !rec.report.is_empty() {
        body.push('\n');
        body.push_str(&rec.report);
    }
    Ok((rec.entry, body, warning))
}

impl FixIndex {
    /// Every stored entry with its document id (for the baseline and for audits; ~15k entries).
    pub fn entries(&self) -> Result<Vec<(String, Entry)>, IndexError> {
        let searcher = self.reader.searcher();
        let mut out = Vec::new();
        for seg in searcher.segment_readers() {
            let store = seg
                .get_store_reader(64)
                .map_err(|e| IndexError::Io(self.dir.clone(), e))?;
            let alive = seg.alive_bitset();
            for doc_id in 0..seg.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc_id)) {
                    continue;
                }
                let d: TantivyDocument = store.get(doc_id)?;
                let id = d
                    .get_first(self.f.id)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                if let Some(e) = self.entry_of(&d) {
                    out.push((id, e));
                }
            }
        }
        Ok(out)
    }
}

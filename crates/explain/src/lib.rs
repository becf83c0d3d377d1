//! kmortem-explain: from a [`kmortem_oops::Report`] (plus a vmcore, when there is one) to
//! findings — which pointer was bad and which member was touched, list corruption, the condition
//! of a `BUG()`/`WARN()`, the loop of a lockup, and known-bug links.
//!
//! `decode` (symbolization and `Code:` disassembly of a whole log) lives here too: it is the first
//! half of explaining, and `kmortem decode` is a thin shell over it.
//!
//! Honesty rules: every finding carries the evidence it rests on (instruction, registers, DWARF
//! location, memory read); a variable whose location is unknown at the PC is reported as such,
//! never guessed; a finding is `high` only when the instruction, the register value and the DWARF
//! location all agree.

pub mod core;
pub mod decode;
pub mod element;
pub mod insn;
pub mod list;
pub mod origin;
pub mod pointer;
pub mod text;

use kmortem_oops::Report;
use kmortem_symbols::{Query, Resolution, Symbolizer};
use origin::FnCode;
use serde::Serialize;
use std::path::Path;

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `bad_pointer`, `list_corruption`, `bug_condition`, `warning_condition`, `lockup_loop`,
    /// `location_unknown`, `known_fix`.
    pub kind: String,
    /// One line.
    pub summary: String,
    /// What the summary rests on, one fact per line.
    pub evidence: Vec<String>,
    pub confidence: Confidence,
    /// Structured facts for machines (variable, member, register, value, ...).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub facts: std::collections::BTreeMap<String, String>,
}

impl Finding {
    pub fn new(kind: &str, summary: String, confidence: Confidence) -> Finding {
        Finding {
            kind: kind.to_string(),
            summary,
            evidence: Vec::new(),
            confidence,
            facts: Default::default(),
        }
    }
    pub fn fact(&mut self, k: &str, v: impl Into<String>) {
        self.facts.insert(k.to_string(), v.into());
    }
}

/// What `explain` works from besides the report.
pub struct Context<'a> {
    pub sym: &'a mut Symbolizer,
    /// Source tree for BUG/WARN lines (`--source`).
    pub source: Option<&'a Path>,
    /// The whole log, for messages printed just before a report (list-debug lines).
    pub log: Option<&'a str>,
    /// The vmcore of the same crash (`--core`).
    pub program: Option<&'a kmortem_kernel::Program>,
}

/// A resolved frame with its code.
pub struct CodeFrame {
    pub res: Resolution,
    pub code: Option<FnCode>,
    pub module: Option<String>,
}

impl CodeFrame {
    fn new(sym: &mut Symbolizer, q: &Query<'_>) -> CodeFrame {
        let res = sym.resolve(q);
        let module = q
            .module
            .map(|m| kmortem_symbols::split_module(m).0.to_string());
        let bin = match &module {
            Some(m) => sym.module(m),
            None => sym.vmlinux.clone(),
        };
        let code = match (bin, res.address) {
            (Some(b), Some(a)) if res.source != kmortem_symbols::Source::None => {
                FnCode::at(&b, module.as_deref(), a)
            }
            _ => None,
        };
        CodeFrame { res, code, module }
    }
    pub fn function(&self) -> String {
        self.res.symbol.clone().unwrap_or_else(|| "??".to_string())
    }
}

/// The RIP frame and the call-trace frames of a report, resolved.
pub struct Frames {
    pub ip: Option<CodeFrame>,
    pub callers: Vec<CodeFrame>,
}

impl Frames {
    pub fn new(sym: &mut Symbolizer, r: &Report) -> Frames {
        let ip = r.ip.as_ref().and_then(|ip| {
            ip.function.as_ref()?;
            Some(CodeFrame::new(sym, &decode::ip_query(ip)))
        });
        // Reliable frames only: `? ` entries are stale stack words, not callers.
        let callers = r
            .frames
            .iter()
            .filter(|f| f.reliable)
            .take(4)
            .map(|f| CodeFrame::new(sym, &decode::frame_query(f)))
            .collect();
        Frames { ip, callers }
    }

    /// The chain of (caller code, call instruction) for following arguments back.
    pub fn tracer(&self) -> origin::Tracer<'_> {
        let mut callers = Vec::new();
        for c in &self.callers {
            let (Some(code), Some(ret)) = (&c.code, c.res.address) else {
                break;
            };
            let Some(call) = code.insn_ending_at(ret) else {
                break;
            };
            if !insn::is_call(&call.ins) {
                break;
            }
            callers.push(origin::Caller {
                code,
                call_ip: call.ip(),
            });
        }
        origin::Tracer { callers }
    }
}

/// Explains one report. Findings come most certain first.
pub fn explain(report: &Report, ctx: &mut Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let frames = Frames::new(ctx.sym, report);
    let lists = list::explain(report, &frames, ctx.log);
    let had_list = !lists.is_empty();
    out.extend(lists);
    out.extend(pointer::explain(report, &frames, ctx.program));
    out.extend(pointer::divide(report, &frames));
    // A list-debug BUG's own file:line (lib/list_debug.c) says nothing more without the source.
    if !had_list || ctx.source.is_some() {
        out.extend(text::bug_warn(report, &frames, ctx.source));
    }
    out.extend(text::lockup(report, &frames));
    if let Some(p) = ctx.program {
        core::explain(report, p, ctx.sym, &mut out);
    }
    // Most certain first; stable among equals (the order above: specific before generic).
    out.sort_by_key(|f| std::cmp::Reverse(f.confidence));
    out
}

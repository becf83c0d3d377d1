//! List corruption: the kernel's CONFIG_DEBUG_LIST reports (`list_add corruption. ...`,
//! `list_del corruption, ...`), which link is bad, what it should have been, and which list
//! head and owning object the arguments of the failing `list_add`/`list_del` name.
//!
//! Folklore: lib/list_debug.c. Since v4.10 (commit de54ebbe26bb, "lib/list_debug.c: make
//! CONFIG_DEBUG_LIST checks BUG") the checks go through CHECK_DATA_CORRUPTION and print `%px`;
//! 6.1 prints:
//!   `list_add corruption. prev is NULL.` / `... next is NULL.`
//!   `list_add corruption. next->prev should be prev (P), but was X. (next=N).`
//!   `list_add corruption. prev->next should be next (N), but was X. (prev=P).`
//!   `list_add double add: new=W, prev=P, next=N.`
//!   `list_del corruption, E->next is NULL` / `E->prev is NULL`
//!   `list_del corruption, E->next is LIST_POISON1 (dead000000000100)` / `->prev is LIST_POISON2`
//!   `list_del corruption. prev->next should be E, but was X. (prev=P)`
//!   `list_del corruption. next->prev should be E, but was X. (next=N)`
//! Before v4.10 the list_del poison checks read `list_del corruption, next is LIST_POISON1 (%p)`
//! (no entry address) and it was a WARN; we accept both. Pinned by tests/lab.rs
//! (`leaf_cfs_rq`, `list_del_corruption`, `list_add_corruption`).

use crate::origin::Origin;
use crate::{Confidence, Finding, Frames};
use kmortem_oops::Report;

/// One parsed list-debug message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMessage {
    /// `list_add` or `list_del`.
    pub op: &'static str,
    /// The bad link: `prev`, `next`, `next->prev`, `prev->next`, `entry->next`, `entry->prev`,
    /// `new` (double add).
    pub link: String,
    /// The value the link should have had, when printed.
    pub expected: Option<u64>,
    /// The value it had.
    pub actual: Option<u64>,
    /// The list entry of a list_del, or the neighbour named in parentheses.
    pub entry: Option<u64>,
    pub neighbour: Option<(String, u64)>,
    pub line: String,
}

fn hex(s: &str) -> Option<u64> {
    let t = s
        .trim()
        .trim_matches(|c| c == '(' || c == ')' || c == '.' || c == ',');
    let t = t.trim_start_matches("0x");
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

/// `(next=ffff...)` / `(prev=...)`.
fn paren(s: &str) -> Option<(String, u64)> {
    let i = s.rfind("(")?;
    let inner = &s[i + 1..];
    let (k, v) = inner.split_once('=')?;
    Some((k.trim().to_string(), hex(v.split(')').next()?)?))
}

/// Parses a list-debug line (timestamp already stripped or not).
pub fn parse_message(line: &str) -> Option<ListMessage> {
    let (op, rest) = if let Some(i) = line.find("list_add corruption") {
        ("list_add", &line[i + "list_add corruption".len()..])
    } else if let Some(i) = line.find("list_del corruption") {
        ("list_del", &line[i + "list_del corruption".len()..])
    } else if let Some(i) = line.find("list_add double add:") {
        let r = &line[i + 20..];
        let mut m = ListMessage {
            op: "list_add",
            link: "new".into(),
            expected: None,
            actual: None,
            entry: None,
            neighbour: None,
            line: line.trim().to_string(),
        };
        for kv in r.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                if k.trim() == "new" {
                    m.entry = hex(v);
                }
            }
        }
        return Some(m);
    } else {
        return None;
    };
    let rest = rest.trim_start_matches(['.', ',']).trim();
    let mut m = ListMessage {
        op,
        link: String::new(),
        expected: None,
        actual: None,
        entry: None,
        neighbour: None,
        line: line.trim().to_string(),
    };
    if let Some(link) = rest
        .strip_suffix(" is NULL.")
        .or_else(|| rest.strip_suffix(" is NULL"))
    {
        // `prev is NULL` (add) or `E->next is NULL` (del).
        match link.split_once("->") {
            Some((e, l)) => {
                m.entry = hex(e);
                m.link = format!("entry->{l}");
            }
            None => m.link = link.trim().to_string(),
        }
        m.actual = Some(0);
        return Some(m);
    }
    if let Some(i) = rest.find(" is LIST_POISON") {
        let who = &rest[..i];
        match who.split_once("->") {
            Some((e, l)) => {
                m.entry = hex(e);
                m.link = format!("entry->{l}");
            }
            None => m.link = format!("entry->{}", who.trim()),
        }
        m.actual = rest[i..].split_whitespace().nth(2).and_then(hex).or(Some(
            if rest[i..].contains("POISON1") {
                0xdead000000000100
            } else {
                0xdead000000000122
            },
        ));
        return Some(m);
    }
    // `next->prev should be prev (P), but was X. (next=N).` / `prev->next should be E, but was X. (prev=P)`
    if let Some((link, tail)) = rest.split_once(" should be ") {
        m.link = link.trim().to_string();
        let (exp, was) = tail.split_once(", but was ")?;
        // `prev (P)` (add) or `E` (del).
        let exp_v = exp
            .rsplit(['(', ' '])
            .next()
            .and_then(hex)
            .or_else(|| hex(exp));
        m.expected = exp_v;
        m.actual = was.split_whitespace().next().and_then(hex);
        m.neighbour = paren(was);
        if op == "list_del" {
            m.entry = m.expected;
        }
        return Some(m);
    }
    None
}

/// The list-debug message of a report: in its text, or in the lines of the log just before it.
pub fn find_message(report: &Report, log: Option<&str>) -> Option<ListMessage> {
    for l in report.text.lines() {
        if let Some(m) = parse_message(l) {
            return Some(m);
        }
    }
    let log = log?;
    let start = report.start_line.saturating_sub(1);
    let lines: Vec<&str> = log.lines().collect();
    for l in lines[start.saturating_sub(6).min(lines.len())..start.min(lines.len())]
        .iter()
        .rev()
    {
        if let Some(m) = parse_message(l) {
            return Some(m);
        }
    }
    None
}

pub fn explain(report: &Report, frames: &Frames, log: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    // Only when this report is the list-debug failure itself (an interleaved message from another
    // CPU must not explain an unrelated report).
    let in_list_check = report
        .ip
        .as_ref()
        .and_then(|i| i.function.as_deref())
        .is_some_and(|f| f.starts_with("__list_") || f.contains("list_debug"));
    if report.kind != kmortem_oops::Kind::ListCorruption && !in_list_check {
        return out;
    }
    let Some(msg) = find_message(report, log) else {
        return out;
    };
    let mut evidence = vec![format!("kernel message: `{}`", msg.line)];
    // The caller of __list_add_valid/__list_del_entry_valid passed (new, prev, next) / (entry).
    let tracer = frames.tracer();
    let args: &[(&str, u16)] = if msg.op == "list_add" {
        &[("new", 5), ("prev", 4), ("next", 1)]
    } else {
        &[("entry", 5)]
    };
    let mut named: Vec<(String, Origin)> = Vec::new();
    let mut caller_fn = None;
    if let Some(c) = tracer.callers.first() {
        caller_fn = Some(c.code.name.clone());
        for (arg, reg) in args {
            if let Some(o) = tracer.origin(c.code, 1, c.call_ip, *reg, 8) {
                named.push((arg.to_string(), o));
            }
        }
        evidence.push(format!(
            "the check was called from {}+{:#x}",
            c.code.name,
            c.call_ip - c.code.start
        ));
    }
    let arg_of = |a: &str| named.iter().find(|n| n.0 == a).map(|n| &n.1);
    let describe = |a: &str| -> String {
        match arg_of(a) {
            Some(o) => {
                let mut ch = Vec::new();
                o.chain(&mut ch);
                let e = o.expr();
                if e == a && ch.is_empty() {
                    format!("`{a}`")
                } else if e == a {
                    format!("`{a}` ({})", ch.join(", "))
                } else {
                    let mut s = format!("`{a}` = `{e}`");
                    if !ch.is_empty() {
                        s.push_str(&format!(" ({})", ch.join(", ")));
                    }
                    s
                }
            }
            None => format!("`{a}`"),
        }
    };
    let val = |v: Option<u64>| v.map(|x| format!("{x:#x}")).unwrap_or_else(|| "?".into());
    let (summary, confidence) = match (msg.op, msg.link.as_str()) {
        ("list_add", "next") | ("list_add", "prev") => (
            format!(
                "list_add: {} is NULL — the list node it should point to was zeroed, freed or never linked",
                describe(&msg.link)
            ),
            Confidence::High,
        ),
        ("list_add", "next->prev") => (
            format!(
                "list_add: `next->prev` should be `prev` ({}) but is {}: {} was modified behind the list's back",
                val(msg.expected),
                val(msg.actual),
                describe("next")
            ),
            Confidence::High,
        ),
        ("list_add", "prev->next") => (
            format!(
                "list_add: `prev->next` should be `next` ({}) but is {}: {} was modified behind the list's back",
                val(msg.expected),
                val(msg.actual),
                describe("prev")
            ),
            Confidence::High,
        ),
        ("list_add", "new") => (
            format!("list_add: {} is already on the list (double add)", describe("new")),
            Confidence::High,
        ),
        ("list_del", l) if l.starts_with("entry->") => {
            let poison = matches!(msg.actual, Some(0xdead000000000100) | Some(0xdead000000000122));
            (
                format!(
                    "list_del: {}{}: its `{}` is {}{}",
                    describe("entry"),
                    msg.entry.map(|e| format!(" ({e:#x})")).unwrap_or_default(),
                    l.trim_start_matches("entry->"),
                    if poison {
                        msg.actual
                            .map(|a| {
                                if a == 0xdead000000000100 {
                                    "LIST_POISON1".to_string()
                                } else {
                                    "LIST_POISON2".to_string()
                                }
                            })
                            .unwrap_or_default()
                    } else {
                        val(msg.actual)
                    },
                    if poison {
                        ": the entry was already removed by list_del() (double list_del, or use after list_del)"
                    } else {
                        ": the entry was never linked or was zeroed"
                    }
                ),
                Confidence::High,
            )
        }
        ("list_del", l) => (
            format!(
                "list_del: `{l}` should point back to the entry {} but is {}: a neighbour was modified or freed behind the list's back{}",
                val(msg.expected),
                val(msg.actual),
                msg.neighbour
                    .as_ref()
                    .map(|(k, v)| format!(" ({k} = {v:#x})"))
                    .unwrap_or_default()
            ),
            Confidence::High,
        ),
        _ => (
            format!("{} corruption: `{}`", msg.op, msg.link),
            Confidence::Medium,
        ),
    };
    for (a, o) in &named {
        let mut ev = Vec::new();
        o.evidence(&mut ev);
        for e in ev {
            evidence.push(format!("{a}: {e}"));
        }
    }
    let mut f = Finding::new("list_corruption", summary, confidence);
    f.evidence = evidence;
    f.fact("operation", msg.op);
    f.fact("link", msg.link.clone());
    if let Some(v) = msg.expected {
        f.fact("expected", format!("{v:#x}"));
    }
    if let Some(v) = msg.actual {
        f.fact("actual", format!("{v:#x}"));
    }
    if let Some(v) = msg.entry {
        f.fact("entry", format!("{v:#x}"));
    }
    if let Some(c) = caller_fn {
        f.fact("caller", c);
    }
    // Values of arguments still in callee-saved registers: the failing check (and the whole
    // function it belongs to, `.cold` parts included) must not write the register.
    let ip_code = frames.ip.as_ref().and_then(|i| i.code.as_ref());
    let parent = frames.ip.as_ref().and_then(|i| {
        let c = i.code.as_ref()?;
        let base = c.name.split(".cold").next()?;
        if base == c.name {
            return None;
        }
        let (idx, _) = c.bin.symbols_named(base).next()?;
        crate::origin::FnCode::at(&c.bin, c.module.as_deref(), c.bin.symbols[idx].address)
    });
    for (a, o) in &named {
        let Some(r) = o.register() else { continue };
        if !crate::insn::CALLEE_SAVED.contains(&r) {
            continue;
        }
        let clean = |c: &crate::origin::FnCode| !c.insns.iter().any(|x| c.written(x).contains(&r));
        if ip_code.is_some_and(clean) && parent.as_ref().is_none_or(clean) {
            let rn = kmortem_symbols::vars::x86_64_register_name(r).unwrap_or("?");
            if let Some(v) = report.registers.get(rn) {
                f.fact(&format!("arg.{a}.value"), format!("{v:#x}"));
                f.evidence.push(format!(
                    "{a} = {v:#x}: %{rn} is callee-saved and {} never writes it",
                    ip_code.map(|c| c.name.as_str()).unwrap_or("?")
                ));
            }
        }
    }
    for (a, o) in &named {
        f.fact(&format!("arg.{a}"), o.expr());
        let mut ch = Vec::new();
        o.chain(&mut ch);
        if !ch.is_empty() {
            f.fact(&format!("arg.{a}.derivation"), ch.join("; "));
        }
    }
    out.push(f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let m = parse_message("[    9.682776] list_add corruption. next is NULL.").unwrap();
        assert_eq!(
            (m.op, m.link.as_str(), m.actual),
            ("list_add", "next", Some(0))
        );
        let m = parse_message(
            "list_del corruption, ffffffffc0457500->next is LIST_POISON1 (dead000000000100)",
        )
        .unwrap();
        assert_eq!(m.link, "entry->next");
        assert_eq!(m.entry, Some(0xffffffffc0457500));
        assert_eq!(m.actual, Some(0xdead000000000100));
        let m = parse_message("list_add corruption. next->prev should be prev (ffff888003c3e1a8), but was ffff888003c3e2a8. (next=ffff888003c3e3a8).").unwrap();
        assert_eq!(m.link, "next->prev");
        assert_eq!(m.expected, Some(0xffff888003c3e1a8));
        assert_eq!(m.actual, Some(0xffff888003c3e2a8));
        assert_eq!(m.neighbour, Some(("next".into(), 0xffff888003c3e3a8)));
        let m = parse_message("list_del corruption. prev->next should be ffff8880a1b2c3d0, but was dead000000000100. (prev=ffff8880a1b2c000)").unwrap();
        assert_eq!(m.link, "prev->next");
        assert_eq!(m.entry, Some(0xffff8880a1b2c3d0));
        // Pre-4.10 wording.
        let m =
            parse_message("list_del corruption, next is LIST_POISON1 (dead000000100100)").unwrap();
        assert_eq!(m.link, "entry->next");
        assert!(parse_message("list_add corruption").is_none());
        assert!(parse_message("nothing").is_none());
    }
}

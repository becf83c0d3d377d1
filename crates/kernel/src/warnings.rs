//! Damage and mismatches, said once and the same way everywhere: a [`Warning`] names what is
//! wrong (its [`Kind`]), the physical or virtual range or the structure it concerns, and a
//! sentence for people. A [`Program`](crate::Program) holds a [`Warnings`] collector: opening
//! it records what is wrong with the dump and the vmlinux, the model's walks (task list,
//! printk, registers, memory size) add what they meet. `kmortem core` prints a command's
//! warnings on stderr, lists them in `--json`, and exits 3 when an answer is partial
//! (docs/json/core.md).

use std::sync::Mutex;

/// What kind of damage or mismatch a warning reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The dump file ends before data its headers describe.
    Truncated,
    /// Pages the answer needed are excluded from the dump or not in it.
    Excluded,
    /// The kdump bitmap disagrees with the page descriptors.
    Bitmap,
    /// Two `PT_LOAD` segments disagree about the same memory.
    OverlappingSegments,
    /// Notes cut short or malformed.
    Notes,
    /// A CPU's saved registers (`NT_PRSTATUS`) are missing or short.
    MissingRegisters,
    /// A kernel list (the task list, ...) is broken.
    DamagedList,
    /// printk's metadata (VMCOREINFO offsets, ring descriptors) is unusable.
    Printk,
    /// Memory the answer needed could not be read.
    Unreadable,
    /// The vmlinux is not the dumped kernel (or not a vmlinux at all), kept with `--force`.
    VmlinuxMismatch,
    /// A module file is not the build the dumped kernel loaded.
    ModuleMismatch,
}

/// One warning. `range` is `[start, end)`; `what` names the note or structure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_range")]
    pub range: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    pub message: String,
}

fn ser_range<S: serde::Serializer>(r: &Option<(u64, u64)>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let (a, b) = r.unwrap_or_default();
    let mut st = s.serialize_struct("range", 2)?;
    st.serialize_field("start", &format!("{a:#x}"))?;
    st.serialize_field("end", &format!("{b:#x}"))?;
    st.end()
}

impl Warning {
    pub fn new(kind: Kind, message: impl Into<String>) -> Warning {
        Warning {
            kind,
            range: None,
            what: None,
            message: message.into(),
        }
    }
    pub fn what(mut self, what: impl Into<String>) -> Warning {
        self.what = Some(what.into());
        self
    }
    pub fn range(mut self, start: u64, end: u64) -> Warning {
        self.range = Some((start, end));
        self
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The warnings of a program, in the order they were found. Shared (`&self`): the walks that
/// find damage only hold a `&Program`. A repeated warning (same kind and message) is kept once
/// per [`Warnings::mark`], so a walk run twice by one command says it once.
#[derive(Debug, Default)]
pub struct Warnings {
    list: Mutex<Vec<Warning>>,
    /// Index of the first warning of the current command.
    mark: Mutex<usize>,
}

impl Warnings {
    pub fn push(&self, w: Warning) {
        let mark = self.mark.lock().map(|m| *m).unwrap_or(0);
        if let Ok(mut l) = self.list.lock() {
            if !l[mark.min(l.len())..].contains(&w) {
                l.push(w);
            }
        }
    }
    /// Start a new command: warnings pushed from now on are [`Warnings::since_mark`]'s.
    pub fn mark(&self) -> usize {
        let n = self.len();
        if let Ok(mut m) = self.mark.lock() {
            *m = n;
        }
        n
    }
    pub fn len(&self) -> usize {
        self.list.lock().map(|l| l.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Warnings from index `from` on.
    pub fn since(&self, from: usize) -> Vec<Warning> {
        self.list
            .lock()
            .map(|l| l.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }
    /// Every warning so far.
    pub fn all(&self) -> Vec<Warning> {
        self.since(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn repeated_warnings_are_kept_once_per_command() {
        let w = Warnings::default();
        w.push(Warning::new(Kind::Truncated, "cut"));
        w.push(Warning::new(Kind::Truncated, "cut"));
        assert_eq!(w.len(), 1);
        let m = w.mark();
        w.push(Warning::new(Kind::Truncated, "cut"));
        w.push(Warning::new(Kind::DamagedList, "list").range(1, 2));
        let v = w.since(m);
        assert_eq!(v.len(), 2);
        let j = serde_json::to_value(&v[1]).unwrap();
        assert_eq!(j["kind"], "damaged_list");
        assert_eq!(j["range"]["start"], "0x1");
        assert!(j.get("what").is_none());
    }
}

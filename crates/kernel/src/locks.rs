//! Who holds a lock: the owner of a `struct mutex` or a `struct rw_semaphore`, and who waits.

use crate::list::walk_list;
use crate::mem::Memory;
use crate::program::{Error, Program};

/// A task, as named in a lock report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskRef {
    #[serde(serialize_with = "crate::hex_addr")]
    pub task: u64,
    pub pid: i32,
    pub comm: String,
}

/// The state of a mutex or an rw_semaphore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockState {
    /// `mutex` or `rw_semaphore`.
    pub kind: &'static str,
    #[serde(serialize_with = "crate::hex_addr")]
    pub addr: u64,
    /// Held (by a writer/owner, or by readers).
    pub locked: bool,
    /// The owning task (a mutex's owner, an rwsem's writer). For a reader-owned rwsem this is
    /// the last reader that took it (a hint, see `reader_owned`).
    pub owner: Option<TaskRef>,
    /// The raw `owner` word.
    #[serde(serialize_with = "crate::hex_addr")]
    pub owner_word: u64,
    /// Flag names set in the low bits of `owner` (and, for rwsems, of `count`).
    pub flags: Vec<&'static str>,
    /// rwsem: held by readers (`RWSEM_READER_OWNED` in owner, or a reader count).
    pub reader_owned: bool,
    /// rwsem: the number of readers holding it (from `count`).
    pub readers: u64,
    /// Tasks on `wait_list`, in queue order.
    pub waiters: Vec<TaskRef>,
}

impl Program {
    fn task_ref(&self, task: u64) -> TaskRef {
        let pid = self.read_member(task, "task_struct", "pid").unwrap_or(0) as u32 as i32;
        let comm = self
            .offset_of("task_struct", "comm")
            .ok()
            .and_then(|o| self.read_cstr(task + o, 16).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        TaskRef { task, pid, comm }
    }

    /// Waiters of a lock: `wait_list` entries are `struct mutex_waiter` / `struct
    /// rwsem_waiter`, both `{ struct list_head list; struct task_struct *task; ... }`.
    fn waiters(&self, lock: u64, sname: &str, waiter: &str) -> Vec<TaskRef> {
        let Ok(wl) = self.offset_of(sname, "wait_list") else {
            return Vec::new();
        };
        let list_off = self.offset_of(waiter, "list").unwrap_or(0);
        let task_off = self.offset_of(waiter, "task").unwrap_or(16);
        let w = walk_list(self, lock + wl, 4096);
        w.nodes
            .iter()
            .filter_map(|&n| self.read_u64(n - list_off + task_off).ok())
            .filter(|&t| t != 0)
            .map(|t| self.task_ref(t))
            .collect()
    }

    /// The owner of the `struct mutex` at `addr`.
    ///
    /// Folklore: since 4.10 (commit 3ca0ff571b09, "locking/mutex: Rework mutex::owner") the
    /// owner is an `atomic_long_t` holding the task pointer with three flag bits below it
    /// (MUTEX_FLAG_WAITERS 0x1, MUTEX_FLAG_HANDOFF 0x2, MUTEX_FLAG_PICKUP 0x4); before, `owner`
    /// was a plain `struct task_struct *` (only with CONFIG_DEBUG_MUTEXES/MUTEX_SPIN_ON_OWNER)
    /// and `count` said whether it was locked. Masking 0x7 is right for both. Pinned by
    /// `tests::mutex_word` and the lab test `lab_lock_owners`.
    pub fn mutex_owner(&self, addr: u64) -> Result<LockState, Error> {
        let word = self.read_member(addr, "mutex", "owner")?;
        let (task, flags) = decode_mutex_owner(word);
        Ok(LockState {
            kind: "mutex",
            addr,
            locked: task != 0,
            owner: (task != 0).then(|| self.task_ref(task)),
            owner_word: word,
            flags,
            reader_owned: false,
            readers: 0,
            waiters: self.waiters(addr, "mutex", "mutex_waiter"),
        })
    }

    /// The owner (writer) or readers of the `struct rw_semaphore` at `addr`.
    ///
    /// Folklore: since 5.3 (commit 94a9717b3c40) `owner` is an `atomic_long_t`: the writer's
    /// task pointer, or for readers the last reader with RWSEM_READER_OWNED (bit 0) set, and
    /// RWSEM_NONSPINNABLE (bit 1); 4.x-5.2 had a `struct task_struct *owner` with the same
    /// bits. `count` holds RWSEM_WRITER_LOCKED (bit 0), RWSEM_FLAG_WAITERS (bit 1),
    /// RWSEM_FLAG_HANDOFF (bit 2) and the reader count from bit 8 (RWSEM_READER_SHIFT) up to
    /// bit 55 (5.3+, kernel/locking/rwsem.c). Pinned by `tests::rwsem_words`.
    pub fn rwsem_owner(&self, addr: u64) -> Result<LockState, Error> {
        let word = self.read_member(addr, "rw_semaphore", "owner")?;
        let count = self.read_member(addr, "rw_semaphore", "count")?;
        let d = decode_rwsem(word, count);
        // A reader-owned rwsem keeps its last reader in `owner` after the readers left
        // (rwsem_clear_reader_owned only runs with CONFIG_DEBUG_RWSEMS): only name it while
        // the count says readers hold it.
        let owner = if d.task != 0 && (d.writer || (d.reader_owned && d.readers > 0)) {
            Some(self.task_ref(d.task))
        } else {
            None
        };
        Ok(LockState {
            kind: "rw_semaphore",
            addr,
            locked: d.writer || d.readers > 0,
            owner,
            owner_word: word,
            flags: d.flags,
            reader_owned: d.reader_owned,
            readers: d.readers,
            waiters: self.waiters(addr, "rw_semaphore", "rwsem_waiter"),
        })
    }
}

/// Split a mutex `owner` word into the task pointer and the flag names.
pub fn decode_mutex_owner(word: u64) -> (u64, Vec<&'static str>) {
    let mut flags = Vec::new();
    for (bit, name) in [(1, "WAITERS"), (2, "HANDOFF"), (4, "PICKUP")] {
        if word & bit != 0 {
            flags.push(name);
        }
    }
    (word & !0x7, flags)
}

/// A decoded rwsem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RwsemWords {
    pub task: u64,
    pub writer: bool,
    pub reader_owned: bool,
    pub readers: u64,
    pub flags: Vec<&'static str>,
}

/// Decode an rw_semaphore's `owner` and `count` words (5.3+ layout).
pub fn decode_rwsem(owner: u64, count: u64) -> RwsemWords {
    let mut flags = Vec::new();
    if owner & 1 != 0 {
        flags.push("READER_OWNED");
    }
    if owner & 2 != 0 {
        flags.push("NONSPINNABLE");
    }
    if count & 2 != 0 {
        flags.push("WAITERS");
    }
    if count & 4 != 0 {
        flags.push("HANDOFF");
    }
    let readers = (count >> 8) & ((1 << 48) - 1);
    RwsemWords {
        task: owner & !0x7,
        writer: count & 1 != 0,
        reader_owned: owner & 1 != 0,
        readers,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutex_word() {
        assert_eq!(
            decode_mutex_owner(0xffff888003a1c001),
            (0xffff888003a1c000, vec!["WAITERS"])
        );
        assert_eq!(decode_mutex_owner(0), (0, vec![]));
        assert_eq!(
            decode_mutex_owner(0xffff888003a1c006).1,
            vec!["HANDOFF", "PICKUP"]
        );
    }

    #[test]
    fn rwsem_words() {
        // a writer with waiters
        let d = decode_rwsem(0xffff888003a1c000, 0x3);
        assert!(d.writer && !d.reader_owned);
        assert_eq!(d.task, 0xffff888003a1c000);
        assert_eq!(d.flags, vec!["WAITERS"]);
        // two readers
        let d = decode_rwsem(0xffff888003a1c001, 0x200);
        assert!(!d.writer && d.reader_owned);
        assert_eq!(d.readers, 2);
    }
}

//! Walking the kernel's intrusive lists (`struct list_head`, `struct hlist_head`) with the
//! checks `CONFIG_DEBUG_LIST` would have made: every link is verified, and the first bad one
//! is reported precisely (which node, which pointer, what it holds, what it should hold).
//!
//! ```text
//! struct list_head  { struct list_head *next, *prev; };        // next at 0, prev at 8
//! struct hlist_head { struct hlist_node *first; };
//! struct hlist_node { struct hlist_node *next, **pprev; };     // next at 0, pprev at 8
//! ```

use crate::mem::{Memory, ReadError};

/// `LIST_POISON1` / `LIST_POISON2` without the poison delta (include/linux/poison.h).
pub const POISON1_LOW: u64 = 0x100;
pub const POISON2_LOW: u64 = 0x122;
/// x86_64's `CONFIG_ILLEGAL_POINTER_VALUE` (arch/x86/Kconfig: 0xdead000000000000).
pub const X86_64_POISON_DELTA: u64 = 0xdead_0000_0000_0000;
/// Longest list walked before giving up (a walk that never returns and never cycles).
pub const DEFAULT_LIMIT: usize = 1_000_000;

/// Which poison a pointer holds, if any.
///
/// Folklore: list_del() writes `LIST_POISON1` into `next` and `LIST_POISON2` into `prev`
/// (since 2.6.x), and hlist_del() does the same to `next`/`pprev`. They are
/// `0x100 + POISON_POINTER_DELTA` and `0x122 + POISON_POINTER_DELTA`, where the delta is
/// `CONFIG_ILLEGAL_POINTER_VALUE`: 0xdead000000000000 on x86_64 (non-canonical, so a use
/// faults with a #GP), 0 on architectures that do not set it, and other non-canonical values
/// elsewhere (e.g. 0x5deadbeef0000000 on some 64-bit arches). The delta is a #define and is in
/// neither BTF nor DWARF nor VMCOREINFO, so it is recognized by its shape instead of a version
/// table: the low 16 bits are 0x100/0x122 and the rest is 0 or a non-canonical pattern.
/// Pinned by `tests::poison_values` and the lab's `list_del_corruption` dump
/// (`lab_list_walks`).
pub fn poison(v: u64) -> Option<Poison> {
    let low = v & 0xffff;
    let high = v & !0xffff;
    let top = (v as i64) >> 47;
    let illegal = high == 0 || (top != 0 && top != -1);
    if !illegal {
        return None;
    }
    match low {
        POISON1_LOW => Some(Poison::One),
        POISON2_LOW => Some(Poison::Two),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Poison {
    /// `LIST_POISON1`: written into `next` by list_del()/hlist_del().
    #[serde(rename = "LIST_POISON1")]
    One,
    /// `LIST_POISON2`: written into `prev`/`pprev` by list_del()/hlist_del().
    #[serde(rename = "LIST_POISON2")]
    Two,
}

impl std::fmt::Display for Poison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Poison::One => "LIST_POISON1",
            Poison::Two => "LIST_POISON2",
        })
    }
}

/// What is wrong with a link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Corruption {
    /// `node->next` is NULL (a list_head's `next` is never NULL on a live list).
    NullNext,
    /// Both `next` and `prev` of the node are NULL: it was zeroed (memset, or freed and
    /// reused) while still linked. Reported at that node, though its predecessor's link is
    /// the first to show it (its `next->prev` does not point back).
    Zeroed,
    /// `node->next` (or `prev`) holds a list poison: the node was deleted (list_del) and
    /// is still being walked, or deleted twice.
    Poisoned { field: &'static str, poison: Poison },
    /// The pointer could not be read through: a hole in the dump or an unmapped address.
    Unreadable { field: &'static str, error: String },
    /// `next->prev` (hlist: `*next->pprev`) does not point back at the node.
    BadBackLink {
        /// The node `next` points at.
        #[serde(serialize_with = "crate::hex_addr")]
        next: u64,
        /// What `next->prev` holds.
        #[serde(serialize_with = "crate::hex_addr")]
        found: u64,
        /// What it should hold (the node itself; for an hlist, the address of the node's
        /// `next`).
        #[serde(serialize_with = "crate::hex_addr")]
        expected: u64,
    },
}

/// The first bad link of a list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadLink {
    /// The node (a list_head / hlist_node address, or the head) whose link is bad.
    #[serde(serialize_with = "crate::hex_addr")]
    pub node: u64,
    /// Its position: 0 = the head / the start address, 1 = the first node after it, ...
    pub index: usize,
    /// The value of `node->next` (0 when unreadable).
    #[serde(serialize_with = "crate::hex_addr")]
    pub next: u64,
    #[serde(flatten)]
    pub corruption: Corruption,
}

impl std::fmt::Display for BadLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.corruption {
            Corruption::NullNext => write!(f, "list corrupted at {:x}: next is NULL", self.node),
            Corruption::Zeroed => write!(
                f,
                "list corrupted at {:x}: next and prev are NULL: the node was zeroed while still on the list",
                self.node
            ),
            Corruption::Poisoned { field, poison } => {
                let v = if *field == "next" {
                    format!("{:x}", self.next)
                } else {
                    "poison".into()
                };
                write!(
                    f,
                    "list corrupted at {:x}: {field} is {poison} ({v}): the node was deleted (list_del) while still on the list",
                    self.node
                )
            }
            Corruption::Unreadable { field, error } => {
                write!(f, "list corrupted at {:x}: {field} unreadable: {error}", self.node)
            }
            Corruption::BadBackLink {
                next,
                found,
                expected,
            } => write!(
                f,
                "list corrupted at {:x}: next->prev should be {expected:x}, but is {found:x} (next is {next:x})",
                self.node
            ),
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum End {
    /// Back at the head (list_head) or at a NULL `next` (hlist): a well-formed list.
    Complete,
    /// A node came back that was already visited, not the head: a cycle that bypasses the
    /// head.
    Cycle {
        #[serde(serialize_with = "crate::hex_addr")]
        at: u64,
    },
    Corrupted(BadLink),
    /// Stopped after `limit` nodes.
    Limit {
        limit: usize,
    },
}

/// A walked list: the node addresses in order (list_head/hlist_node addresses; the head is
/// not among them), and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListWalk {
    #[serde(serialize_with = "crate::hex_addr")]
    pub head: u64,
    pub hlist: bool,
    #[serde(serialize_with = "hex_vec")]
    pub nodes: Vec<u64>,
    #[serde(flatten)]
    pub end: End,
}

fn hex_vec<S: serde::Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| format!("{x:#x}")))
}

impl ListWalk {
    pub fn corruption(&self) -> Option<&BadLink> {
        match &self.end {
            End::Corrupted(b) => Some(b),
            _ => None,
        }
    }

    /// `container_of` for every node: subtract the member's offset.
    pub fn containers(&self, offset: u64) -> Vec<u64> {
        self.nodes.iter().map(|n| n.wrapping_sub(offset)).collect()
    }
}

fn bad(node: u64, index: usize, next: u64, c: Corruption) -> End {
    End::Corrupted(BadLink {
        node,
        index,
        next,
        corruption: c,
    })
}

/// One step along a list: the forward pointer stored at `link` (node `cur`'s `next`, or an
/// hlist head's `first`) and the back pointer of the node it leads to (`prev` or `pprev`, the
/// second word of both node types). `Ok(None)`: the forward pointer is NULL (an hlist's end, a
/// `list_head`'s corruption). Unreadable words and poisoned forward pointers end the walk.
fn follow(mem: &dyn Memory, cur: u64, link: u64, index: usize) -> Result<Option<(u64, u64)>, End> {
    let unreadable = |next: u64, e: ReadError| {
        bad(
            cur,
            index,
            next,
            Corruption::Unreadable {
                field: "next",
                error: e.to_string(),
            },
        )
    };
    let next = mem.read_u64(link).map_err(|e| unreadable(0, e))?;
    if next == 0 {
        return Ok(None);
    }
    if let Some(p) = poison(next) {
        return Err(bad(
            cur,
            index,
            next,
            Corruption::Poisoned {
                field: "next",
                poison: p,
            },
        ));
    }
    let back = mem
        .read_u64(next.wrapping_add(8))
        .map_err(|e| unreadable(next, e))?;
    Ok(Some((next, back)))
}

/// The walk's end for a back pointer `back` of node `next` that is not `expected`: poisoned
/// (named `field`), or simply wrong.
fn bad_back_link(
    cur: u64,
    index: usize,
    next: u64,
    back: u64,
    expected: u64,
    field: &'static str,
) -> End {
    match poison(back) {
        Some(p) => bad(cur, index, next, Corruption::Poisoned { field, poison: p }),
        None => bad(
            cur,
            index,
            next,
            Corruption::BadBackLink {
                next,
                found: back,
                expected,
            },
        ),
    }
}

/// Walk a `struct list_head` from `head` (a list head, or any node of a circular list),
/// checking `next` and `next->prev` at every step, until it returns to `head`.
pub fn walk_list(mem: &dyn Memory, head: u64, limit: usize) -> ListWalk {
    let mut nodes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    seen.insert(head);
    let mut cur = head;
    let end = loop {
        let index = nodes.len();
        if index >= limit {
            break End::Limit { limit };
        }
        let (next, back) = match follow(mem, cur, cur, index) {
            Ok(Some(step)) => step,
            Ok(None) => break bad(cur, index, 0, Corruption::NullNext),
            Err(end) => break end,
        };
        if back != cur {
            if poison(back).is_none() && back == 0 && mem.read_u64(next).ok() == Some(0) {
                nodes.push(next);
                break bad(next, index + 1, 0, Corruption::Zeroed);
            }
            break bad_back_link(cur, index, next, back, cur, "next->prev");
        }
        if next == head {
            break End::Complete;
        }
        if !seen.insert(next) {
            break End::Cycle { at: next };
        }
        nodes.push(next);
        cur = next;
    };
    ListWalk {
        head,
        hlist: false,
        nodes,
        end,
    }
}

/// Walk a `struct hlist_head` at `head`: `first`, then each node's `next` until NULL,
/// checking that every node's `pprev` points at the pointer that led to it.
pub fn walk_hlist(mem: &dyn Memory, head: u64, limit: usize) -> ListWalk {
    let mut nodes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // `link` is the address of the pointer we follow (head->first, then node->next).
    let mut link = head;
    let mut cur = head;
    let end = loop {
        let index = nodes.len();
        if index >= limit {
            break End::Limit { limit };
        }
        let (next, pprev) = match follow(mem, cur, link, index) {
            Ok(Some(step)) => step,
            Ok(None) => break End::Complete,
            Err(end) => break end,
        };
        if pprev != link {
            break bad_back_link(cur, index, next, pprev, link, "next->pprev");
        }
        if !seen.insert(next) {
            break End::Cycle { at: next };
        }
        nodes.push(next);
        cur = next;
        link = next;
    };
    ListWalk {
        head,
        hlist: true,
        nodes,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::ReadError;
    use std::collections::HashMap;

    /// Memory made of 8-byte words.
    struct Words(HashMap<u64, u64>);
    impl Memory for Words {
        fn read(&self, a: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            let v = self
                .0
                .get(&a)
                .ok_or(ReadError::NotMapped { vaddr: a, level: 1 })?;
            buf.copy_from_slice(&v.to_le_bytes()[..buf.len()]);
            Ok(())
        }
    }

    /// A circular list head -> nodes[0] -> ... -> head.
    fn circle(head: u64, nodes: &[u64]) -> Words {
        let mut all = vec![head];
        all.extend_from_slice(nodes);
        let mut m = HashMap::new();
        for (i, &n) in all.iter().enumerate() {
            m.insert(n, all[(i + 1) % all.len()]);
            m.insert(n + 8, all[(i + all.len() - 1) % all.len()]);
        }
        Words(m)
    }

    #[test]
    fn poison_values() {
        assert_eq!(poison(0xdead000000000100), Some(Poison::One));
        assert_eq!(poison(0xdead000000000122), Some(Poison::Two));
        assert_eq!(poison(0x100), Some(Poison::One));
        assert_eq!(poison(0x122), Some(Poison::Two));
        // a canonical kernel address ending in 0x100 is a pointer, not poison
        assert_eq!(poison(0xffff888000000100), None);
        assert_eq!(poison(0xdead000000000000), None);
    }

    #[test]
    fn good_list() {
        let m = circle(0x1000, &[0x2000, 0x3000, 0x4000]);
        let w = walk_list(&m, 0x1000, 100);
        assert_eq!(w.nodes, vec![0x2000, 0x3000, 0x4000]);
        assert_eq!(w.end, End::Complete);
        assert_eq!(w.containers(0x10), vec![0x1ff0, 0x2ff0, 0x3ff0]);
    }

    #[test]
    fn null_next_poison_backlink_hole() {
        let mut m = circle(0x1000, &[0x2000, 0x3000]);
        m.0.insert(0x2000, 0);
        let w = walk_list(&m, 0x1000, 100);
        assert_eq!(w.nodes, vec![0x2000]);
        let b = w.corruption().unwrap();
        assert_eq!(
            (b.node, b.index, &b.corruption),
            (0x2000, 1, &Corruption::NullNext)
        );
        assert!(b.to_string().contains("next is NULL"), "{b}");

        let mut m = circle(0x1000, &[0x2000, 0x3000]);
        m.0.insert(0x2000, 0);
        m.0.insert(0x2008, 0);
        let w = walk_list(&m, 0x1000, 100);
        let b = w.corruption().unwrap();
        assert_eq!(
            (b.node, b.index, &b.corruption),
            (0x2000, 1, &Corruption::Zeroed)
        );

        let mut m = circle(0x1000, &[0x2000, 0x3000]);
        m.0.insert(0x2000, 0xdead000000000100);
        let b = walk_list(&m, 0x1000, 100).corruption().cloned().unwrap();
        assert_eq!(
            b.corruption,
            Corruption::Poisoned {
                field: "next",
                poison: Poison::One
            }
        );

        let mut m = circle(0x1000, &[0x2000, 0x3000]);
        m.0.insert(0x3008, 0x5000);
        let b = walk_list(&m, 0x1000, 100).corruption().cloned().unwrap();
        assert_eq!(
            b.corruption,
            Corruption::BadBackLink {
                next: 0x3000,
                found: 0x5000,
                expected: 0x2000
            }
        );
        assert!(b.to_string().contains("should be 2000, but is 5000"), "{b}");

        let mut m = circle(0x1000, &[0x2000, 0x3000]);
        m.0.insert(0x2000, 0x9000);
        let b = walk_list(&m, 0x1000, 100).corruption().cloned().unwrap();
        assert!(
            matches!(b.corruption, Corruption::Unreadable { .. }),
            "{b:?}"
        );
    }

    #[test]
    fn cycle_and_limit() {
        // head -> a -> b -> a (b.next = a, a.prev = b so the back link holds)
        let m = Words(HashMap::from([
            (0x1000, 0x2000),
            (0x1008, 0x3000),
            (0x2000, 0x3000),
            (0x2008, 0x1000),
            (0x3000, 0x2000),
            (0x3008, 0x2000),
        ]));
        // With back links checked, a loop that bypasses the head always shows first as a
        // node whose successor does not point back: b->next = a, but a->prev = head.
        let w = walk_list(&m, 0x1000, 100);
        assert_eq!(w.nodes, vec![0x2000, 0x3000]);
        assert_eq!(
            w.corruption().map(|b| (b.node, b.corruption.clone())),
            Some((
                0x3000,
                Corruption::BadBackLink {
                    next: 0x2000,
                    found: 0x1000,
                    expected: 0x3000
                }
            ))
        );
        let m = circle(0x1000, &[0x2000, 0x3000, 0x4000]);
        assert_eq!(walk_list(&m, 0x1000, 2).end, End::Limit { limit: 2 });
    }

    #[test]
    fn hlist() {
        // head(0x1000).first = 0x2000; 0x2000 -> 0x3000 -> NULL
        let mut m = Words(HashMap::from([
            (0x1000, 0x2000),
            (0x2000, 0x3000),
            (0x2008, 0x1000),
            (0x3000, 0),
            (0x3008, 0x2000),
        ]));
        let w = walk_hlist(&m, 0x1000, 100);
        assert_eq!(w.nodes, vec![0x2000, 0x3000]);
        assert_eq!(w.end, End::Complete);
        m.0.insert(0x3008, 0xdead000000000122);
        let b = walk_hlist(&m, 0x1000, 100).corruption().cloned().unwrap();
        assert_eq!(b.node, 0x2000);
        assert_eq!(
            b.corruption,
            Corruption::Poisoned {
                field: "next->pprev",
                poison: Poison::Two
            }
        );
    }
}

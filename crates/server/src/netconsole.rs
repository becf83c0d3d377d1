//! The netconsole UDP receiver.
//!
//! Takes plain netconsole (console text, one or more lines or a partial line per datagram) and
//! extended netconsole (`[release,]<level>,<seq>,<ts>,<flags>[,ncfrag=<off>/<len>];text`,
//! parsed by [`kmortem_oops::input::parse_kmsg`]). Per sender (source IP address) it
//! reassembles fragments, puts extended records back in sequence order, and cuts the stream
//! into reports with a [`kmortem_oops::Scanner`].
//!
//! Nothing in a datagram is proof of who sent it: UDP source addresses are spoofed at will.
//! So senders outside the allow-list (`--netconsole-allow 10.0.0.0/8,...`) are dropped before
//! any state is kept for them, a sender's host name is its address or the name the config file
//! gives that address (never a name from the datagram), and its reports are stored with
//! origin `unauthenticated`.
//!
//! Memory is bounded in bytes and fair across senders: every sender's buffers (half-assembled
//! fragments, the reorder window, the open report's raw lines, a partial line) are counted;
//! one sender over its cap (`Limits::sender_memory`) loses its reorder window and fragments,
//! then has its open report cut; all senders together over the budget (`Limits::memory`, the
//! share of `--netconsole-memory` of this worker) lose the least valuable senders first: the
//! least advanced (fewest datagrams received), and among those the newest, while senders in the
//! config's `[hosts]` and senders in the middle of a report are evicted last. A full sender
//! table admits a new unknown sender only in place of one silent for a minute: a flood of new
//! addresses cannot push out a host that is sending its crash. Whatever does not fit is
//! dropped and counted in `kmortem_netconsole_dropped_total{reason}`.
//!
//! The per-line path is built for floods (≥100k lines/s, BENCHMARKS.md `## serve`): a record
//! that arrives in sequence goes straight to the parser without being copied or held, the
//! parser skips lines that cannot start a report with one multi-pattern search, raw lines are
//! kept (in reused buffers) only while a report is open, and datagrams are read in batches.
//!
//! Folklore:
//! - Extended messages longer than the netconsole chunk are split into `ncfrag=` fragments;
//!   they are joined per sender by [`kmortem_oops::input::Reassembler`] (the same code that
//!   joins fragments found in log files; its folklore is there). Pinned by
//!   `tests::fragments_any_order`.
//! - UDP reorders and drops. Records wait in a reorder window until the next sequence number
//!   arrives, the window is full, or they have waited `hold`; then we skip the gap. Pinned by
//!   `tests::reorder_and_gap`.
//! - A reboot restarts `seq` near 0: a sequence number far below the expected one starts a new
//!   stream instead of being dropped as late. Pinned by `tests::reboot_restarts_sequence`.
//! - Inside an extended record, newlines of a multi-line message are escaped (`\x0a`), and a
//!   raw `\n` starts the dictionary (` KEY=VALUE` lines), which we drop (keeping `release=`).

use crate::ingest::Writer;
use crate::metrics::Metrics;
use kmortem_oops::input::{parse_kmsg, unescape_kmsg, Frag, FragReject, Reassembler};
use kmortem_oops::Scanner;
use kmortem_store::Origin;
use kmortem_store::{time, NewReport};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_senders: usize,
    /// Half-assembled fragmented messages per sender.
    pub max_fragments: usize,
    /// Largest reassembled message.
    pub max_message: usize,
    /// Records held back waiting for a missing sequence number, per sender.
    pub reorder_window: usize,
    /// How long a record waits for a missing predecessor (or a fragment for its siblings).
    pub hold: Duration,
    /// A sender silent this long has its open report closed.
    pub idle_flush: Duration,
    /// A sender silent this long is forgotten.
    pub forget: Duration,
    /// Longest partial line kept for plain netconsole.
    pub max_partial: usize,
    /// Lines kept per sender to cut raw excerpts from.
    pub raw_lines: usize,
    /// Bytes all senders of this receiver may hold together.
    pub memory: usize,
    /// Bytes one sender may hold.
    pub sender_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_senders: 4096,
            max_fragments: 32,
            max_message: 16 * 1024,
            reorder_window: 512,
            hold: Duration::from_secs(2),
            idle_flush: Duration::from_secs(10),
            forget: Duration::from_secs(3600),
            max_partial: 8 * 1024,
            raw_lines: 2000,
            memory: 64 << 20,
            sender_memory: 1 << 20,
        }
    }
}

#[derive(Clone)]
struct Header {
    pri: u32,
    seq: u64,
    ts_usec: u64,
    cont: bool,
    caller: Option<String>,
}

struct Held {
    at: Instant,
    header: Header,
    body: Vec<u8>,
}

struct Sender {
    host: String,
    /// Named in the config's `[hosts]`: evicted last.
    known: bool,
    first_seen: Instant,
    last_seen: Instant,
    /// Datagrams received: how far the sender has come (the least advanced are evicted first).
    advance: u64,
    /// Bytes counted for this sender the last time they were computed ([`Sender::bytes`]).
    mem: usize,
    /// Bytes of the bodies in `held`, of the buffers in `lines` and in `spare`.
    held_bytes: usize,
    lines_bytes: usize,
    spare_bytes: usize,
    /// The largest message length (`ncfrag=.../<total>`) this sender has fragmented: a bound
    /// on each half-assembled message it holds.
    frag_max: usize,
    frags: Reassembler<Header>,
    held: BTreeMap<u64, Held>,
    next_seq: Option<u64>,
    release: Option<String>,
    partial: Vec<u8>,
    scanner: Scanner,
    /// Lines fed to the scanner while a report may be open (cleared whenever the scanner is
    /// idle), the first being line number `first_line`; numbered from 1 like the scanner's
    /// `start_line`/`end_line`.
    lines: VecDeque<Vec<u8>>,
    first_line: usize,
    line_no: usize,
    /// Line buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// Lines seen since the scanner last produced or flushed (so idle flush is cheap).
    dirty: bool,
    /// Every line fed to the parser (tests only).
    #[cfg(test)]
    fed: Vec<String>,
}

impl Sender {
    fn new(host: String, known: bool, now: Instant, limits: &Limits) -> Self {
        Sender {
            host,
            known,
            first_seen: now,
            last_seen: now,
            advance: 0,
            mem: 0,
            held_bytes: 0,
            lines_bytes: 0,
            spare_bytes: 0,
            frag_max: 0,
            frags: Reassembler::new(limits.max_fragments, limits.max_message),
            held: BTreeMap::new(),
            next_seq: None,
            release: None,
            partial: Vec::new(),
            scanner: Scanner::new(),
            lines: VecDeque::new(),
            first_line: 1,
            line_no: 0,
            spare: Vec::new(),
            dirty: false,
            #[cfg(test)]
            fed: Vec::new(),
        }
    }
}

/// The receiver's state; [`Receiver::run`] drives it from a socket, tests drive
/// [`Receiver::datagram`] and [`Receiver::tick`] directly.
pub struct Receiver {
    writer: Option<Writer>,
    metrics: Arc<Metrics>,
    names: BTreeMap<IpAddr, String>,
    /// Sender networks accepted; empty = any.
    allow: Vec<Net>,
    limits: Limits,
    senders: HashMap<IpAddr, Sender>,
    /// Sum of the senders' `mem`.
    total: usize,
    /// Reports found and not yet handed to the writer.
    out: Vec<NewReport>,
    /// The clock of fragment stamps (milliseconds since this instant).
    epoch: Instant,
    /// Scratch for building one parser line.
    scratch: Vec<u8>,
}

/// How often the receive loop wakes up with no traffic (timers: gaps, fragments, idle flush).
const TICK: Duration = Duration::from_millis(100);

/// Bind the UDP socket with a large receive buffer (the kernel caps it at `net.core.rmem_max`)
/// and a receive timeout of [`TICK`], for [`Receiver::run`]'s blocking loop.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(addr)?;
    sock.set_read_timeout(Some(TICK))?;
    let s2 = socket2::SockRef::from(&sock);
    let _ = s2.set_recv_buffer_size(16 << 20);
    Ok(sock)
}

/// Datagrams for one worker, copied out of a receive batch.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    /// (sender, end offset in `data`) per datagram, in arrival order.
    items: Vec<(IpAddr, usize)>,
}

enum Msg {
    Data(Chunk),
    Tick(Instant),
}

/// Chunks queued per worker before the reader waits (bounds memory under a flood; the socket
/// buffer then absorbs, and the kernel drops what does not fit). A chunk holds at most one
/// receive batch (32 datagrams of at most 64 KiB).
const WORKER_QUEUE: usize = 8;

/// Chunks bigger than this are freed after use instead of kept for reuse, so that a burst of
/// huge datagrams does not stay allocated.
const KEEP_CHUNK: usize = 256 * 1024;

/// Which worker owns a sender: a fixed hash of its address, so that one sender's datagrams
/// always reach the same worker, in order.
fn worker_of(ip: IpAddr, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ip.hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// Start receiving on `sock` with one [`Receiver`] per worker thread. With one worker the
/// receiver reads the socket itself ([`Receiver::run`]); with more, a reader thread takes
/// datagrams in batches and hands each to the worker that owns its sender (by address), so
/// fragments and sequence order stay per sender while parsing runs on several cores. Every
/// thread ends when `shutdown` turns true, after the workers closed their open reports.
pub fn start(
    sock: std::net::UdpSocket,
    mut receivers: Vec<Receiver>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    if receivers.len() <= 1 {
        let Some(r) = receivers.pop() else {
            return Ok(Vec::new());
        };
        let t = std::thread::Builder::new()
            .name("kmortem-netcons".into())
            .spawn(move || r.run(sock, shutdown))?;
        return Ok(vec![t]);
    }
    let n = receivers.len();
    let metrics = receivers[0].metrics.clone();
    let (spare_tx, spare_rx) = std::sync::mpsc::sync_channel::<Chunk>(n * WORKER_QUEUE);
    let mut threads = Vec::new();
    let mut txs = Vec::new();
    for (i, mut r) in receivers.into_iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(WORKER_QUEUE);
        txs.push(tx);
        let spare = spare_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("kmortem-nc-{i}"))
                .spawn(move || {
                    while let Ok(msg) = rx.recv() {
                        match msg {
                            Msg::Data(mut c) => {
                                let now = Instant::now();
                                let mut start = 0;
                                for &(ip, end) in &c.items {
                                    r.datagram(ip, &c.data[start..end], now);
                                    start = end;
                                }
                                r.hand_off();
                                if c.data.capacity() <= KEEP_CHUNK {
                                    c.data.clear();
                                    c.items.clear();
                                    let _ = spare.try_send(c);
                                }
                            }
                            Msg::Tick(now) => {
                                r.tick(now);
                                r.hand_off();
                            }
                        }
                    }
                    // The reader is gone: shutting down.
                    r.flush_all();
                    r.hand_off();
                })?,
        );
    }
    let reader = std::thread::Builder::new()
        .name("kmortem-netcons".into())
        .spawn(move || {
            let mut pending: Vec<Option<Chunk>> = (0..n).map(|_| None).collect();
            receive_loop(
                &sock,
                &shutdown,
                |batch| {
                    for (from, d) in batch.iter() {
                        let Some(ip) = from else {
                            metrics.drop_nc("malformed");
                            continue;
                        };
                        let c = pending[worker_of(ip, n)]
                            .get_or_insert_with(|| spare_rx.try_recv().unwrap_or_default());
                        c.data.extend_from_slice(d);
                        c.items.push((ip, c.data.len()));
                    }
                    for (p, tx) in pending.iter_mut().zip(&txs) {
                        if let Some(c) = p.take() {
                            let _ = tx.send(Msg::Data(c));
                        }
                    }
                },
                |now| {
                    for tx in &txs {
                        let _ = tx.send(Msg::Tick(now));
                    }
                },
            );
            // Dropping the senders ends the workers, which flush; wait for them.
            drop(txs);
            for t in threads {
                let _ = t.join();
            }
        })?;
    Ok(vec![reader])
}

/// Read `sock` until `shutdown` turns true: each received batch goes to `on_batch`, and
/// `on_tick` runs at least every [`TICK`] (the socket's read timeout bounds the wait).
fn receive_loop(
    sock: &std::net::UdpSocket,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    mut on_batch: impl FnMut(&crate::udp::Batch),
    mut on_tick: impl FnMut(Instant),
) {
    let mut batch = crate::udp::Batch::new();
    let mut last_tick = Instant::now();
    while !*shutdown.borrow() {
        match batch.recv_blocking(sock) {
            Ok(_) => on_batch(&batch),
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                tracing::warn!("netconsole socket: {e}");
                std::thread::sleep(TICK);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            on_tick(now);
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

impl Receiver {
    pub fn new(
        writer: Writer,
        metrics: Arc<Metrics>,
        names: BTreeMap<IpAddr, String>,
        limits: Limits,
    ) -> Self {
        Receiver {
            writer: Some(writer),
            metrics,
            names,
            allow: Vec::new(),
            limits,
            senders: HashMap::new(),
            total: 0,
            out: Vec::new(),
            epoch: Instant::now(),
            scratch: Vec::new(),
        }
    }

    /// A receiver with no writer: reports accumulate for [`Receiver::take_reports`].
    pub fn detached(metrics: Arc<Metrics>, limits: Limits) -> Self {
        Receiver {
            writer: None,
            metrics,
            names: BTreeMap::new(),
            allow: Vec::new(),
            limits,
            senders: HashMap::new(),
            total: 0,
            out: Vec::new(),
            epoch: Instant::now(),
            scratch: Vec::new(),
        }
    }

    /// Name senders by IP address (the config file's `[hosts]`).
    pub fn with_names(mut self, names: BTreeMap<IpAddr, String>) -> Self {
        self.names = names;
        self
    }

    /// Accept datagrams only from these networks (`--netconsole-allow`); empty = any.
    pub fn with_allow(mut self, allow: Vec<Net>) -> Self {
        self.allow = allow;
        self
    }

    /// Bytes held by all senders' buffers now.
    pub fn bytes(&self) -> usize {
        self.total
    }

    pub fn take_reports(&mut self) -> Vec<NewReport> {
        std::mem::take(&mut self.out)
    }

    /// The receive loop of a single worker, on a thread of its own ([`start`]): a blocking
    /// `recvmmsg(2)` that returns as soon as one datagram is queued and takes up to
    /// [`crate::udp::BATCH`] (no readiness polling, no task wake-ups per burst), and timers at
    /// least every [`TICK`]. Ends when `shutdown` turns true, closing every open report.
    pub fn run(mut self, sock: std::net::UdpSocket, shutdown: tokio::sync::watch::Receiver<bool>) {
        // One thread both reads and parses: both callbacks need the receiver; they never run
        // at the same time, and a RefCell lends it to whichever runs.
        let me = std::cell::RefCell::new(&mut self);
        receive_loop(
            &sock,
            &shutdown,
            |batch| {
                let mut r = me.borrow_mut();
                let now = Instant::now();
                for (from, d) in batch.iter() {
                    match from {
                        Some(ip) => r.datagram(ip, d, now),
                        None => r.metrics.drop_nc("malformed"),
                    }
                }
                r.hand_off();
            },
            |now| {
                let mut r = me.borrow_mut();
                r.tick(now);
                r.hand_off();
            },
        );
        // Shutting down: close every open report.
        self.flush_all();
        self.hand_off();
    }

    fn hand_off(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if let Some(w) = &self.writer {
            let out = std::mem::take(&mut self.out);
            self.metrics
                .source(&self.metrics.ingest_reports, "netconsole", out.len() as u64);
            w.submit_blocking(out);
        }
    }

    /// The host name of a sender: its configured name, else its address; and whether it is
    /// configured.
    fn host_name(&self, ip: IpAddr) -> (String, bool) {
        let ip = canonical(ip);
        match self.names.get(&ip) {
            Some(n) => (n.clone(), true),
            None => (ip.to_string(), false),
        }
    }

    /// Handle one datagram from `from`.
    pub fn datagram(&mut self, from: IpAddr, data: &[u8], now: Instant) {
        self.metrics.netconsole_datagrams.inc();
        if data.is_empty() {
            self.metrics.drop_nc("malformed");
            return;
        }
        if !self.senders.contains_key(&from) {
            if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(from)) {
                self.metrics.drop_nc("not_allowed");
                return;
            }
            let (host, known) = self.host_name(from);
            if self.senders.len() >= self.limits.max_senders && !self.evict_one(now, known) {
                self.metrics.drop_nc("too_many_senders");
                return;
            }
            self.senders
                .insert(from, Sender::new(host, known, now, &self.limits));
            // inc/dec, not set: several receivers (one per worker thread) share the gauge.
            self.metrics.netconsole_senders.inc();
        }
        let limits = self.limits;
        let stamp = stamp(self.epoch, now);
        let Some(s) = self.senders.get_mut(&from) else {
            return;
        };
        s.last_seen = now;
        s.advance += 1;
        let mut ctx = Ctx {
            metrics: &self.metrics,
            limits: &limits,
            out: &mut self.out,
            scratch: &mut self.scratch,
        };
        let before = s.mem;
        match parse_kmsg(data) {
            Some(rec) => {
                if let Some(r) = rec.release {
                    if s.release.as_deref() != Some(r) {
                        s.release = Some(r.to_string());
                    }
                }
                let head = RecHead {
                    pri: rec.pri,
                    seq: rec.seq,
                    ts_usec: rec.ts_usec,
                    cont: rec.cont,
                    caller: rec.caller,
                };
                match rec.ncfrag {
                    None => ctx.record(s, head, rec.text, now),
                    Some((off, total)) => ctx.fragment(s, head, off, total, rec.text, now, stamp),
                }
            }
            None => ctx.plain(s, data),
        }
        if s.bytes(&limits) > limits.sender_memory {
            ctx.shrink(s);
        }
        s.mem = s.bytes(&limits);
        self.account(before, s_mem(&self.senders, from));
        if self.total > self.limits.memory {
            self.evict_to_budget(now);
        }
    }

    /// Apply a sender's change of size to the total and the gauge.
    fn account(&mut self, before: usize, after: usize) {
        self.total = (self.total + after).saturating_sub(before);
        if after >= before {
            self.metrics
                .netconsole_bytes
                .inc_by((after - before) as i64);
        } else {
            self.metrics
                .netconsole_bytes
                .dec_by((before - after) as i64);
        }
    }

    /// Remove a sender, closing its open report; returns whether one was there.
    fn remove(&mut self, ip: IpAddr) -> bool {
        let Some(s) = self.senders.remove(&ip) else {
            return false;
        };
        self.metrics.netconsole_senders.dec();
        self.account(s.mem, 0);
        let mut ctx = Ctx {
            metrics: &self.metrics,
            limits: &self.limits,
            out: &mut self.out,
            scratch: &mut self.scratch,
        };
        ctx.close(s);
        true
    }

    /// Make room in a full table for a new sender: the sender silent the longest, if it has
    /// been silent for a minute; for a sender named in `[hosts]`, else the lowest-ranked
    /// unnamed sender ([`Sender::rank`]).
    fn evict_one(&mut self, now: Instant, known: bool) -> bool {
        let silent = self
            .senders
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_seen) > Duration::from_secs(60))
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(ip, _)| *ip);
        let victim = silent.or_else(|| {
            known
                .then(|| {
                    self.senders
                        .iter()
                        .filter(|(_, s)| !s.known)
                        .min_by_key(|(_, s)| s.rank())
                        .map(|(ip, _)| *ip)
                })
                .flatten()
        });
        match victim {
            Some(ip) => self.remove(ip),
            None => false,
        }
    }

    /// Over the byte budget: evict the lowest-ranked senders until the total is at most 7/8
    /// of the budget (in one pass, so that a flood costs one sort per eighth of the budget,
    /// not one per datagram).
    fn evict_to_budget(&mut self, _now: Instant) {
        let mut ranked: Vec<(SenderRank, IpAddr)> =
            self.senders.iter().map(|(ip, s)| (s.rank(), *ip)).collect();
        ranked.sort_unstable();
        let target = self.limits.memory / 8 * 7;
        for (_, ip) in ranked {
            if self.total <= target {
                break;
            }
            if self.remove(ip) {
                self.metrics.drop_nc("memory");
            }
        }
        // Folklore: freed buffers stay in the allocator's arenas (glibc keeps one per thread
        // that allocated), so a flood that is evicted again and again would ratchet the RSS up
        // while our count stays under the budget; give the free pages back. Pinned by
        // crates/cli/tests/serve_attacks.rs `spoofed_netconsole_flood_from_10000_sources`.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Time passes: expire fragments, skip gaps that waited too long, close idle reports.
    pub fn tick(&mut self, now: Instant) {
        let limits = self.limits;
        let epoch = self.epoch;
        let mut forget = Vec::new();
        let mut changes = Vec::new();
        for (ip, s) in self.senders.iter_mut() {
            let mut ctx = Ctx {
                metrics: &self.metrics,
                limits: &limits,
                out: &mut self.out,
                scratch: &mut self.scratch,
            };
            let hold_ms = limits.hold.as_millis() as u64;
            let cutoff = stamp(epoch, now).saturating_sub(hold_ms);
            for _ in 0..s.frags.expire(cutoff) {
                ctx.metrics.drop_nc("fragment_expired");
            }
            while s
                .held
                .first_key_value()
                .is_some_and(|(_, h)| now.duration_since(h.at) > limits.hold)
            {
                ctx.release_first(s);
                ctx.drain(s);
            }
            let idle = now.duration_since(s.last_seen);
            if idle > limits.idle_flush && (s.dirty || !s.partial.is_empty()) {
                ctx.flush(s);
            }
            if idle > limits.forget {
                forget.push(*ip);
            }
            let before = s.mem;
            s.mem = s.bytes(&limits);
            changes.push((before, s.mem));
        }
        for (before, after) in changes {
            self.account(before, after);
        }
        for ip in forget {
            self.remove(ip);
        }
    }

    /// Close every sender's open report (shutdown, or the end of a test).
    pub fn flush_all(&mut self) {
        let limits = self.limits;
        for s in self.senders.values_mut() {
            let mut ctx = Ctx {
                metrics: &self.metrics,
                limits: &limits,
                out: &mut self.out,
                scratch: &mut self.scratch,
            };
            while !s.held.is_empty() {
                ctx.release_first(s);
                ctx.drain(s);
            }
            ctx.flush(s);
        }
    }
}

/// Milliseconds from `epoch` to `now`: the reassembler's clock.
fn stamp(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64
}

/// An extended record's header, borrowed from the datagram.
#[derive(Clone, Copy)]
struct RecHead<'a> {
    pri: u32,
    seq: u64,
    ts_usec: u64,
    cont: bool,
    caller: Option<&'a str>,
}

impl RecHead<'_> {
    fn owned(&self) -> Header {
        Header {
            pri: self.pri,
            seq: self.seq,
            ts_usec: self.ts_usec,
            cont: self.cont,
            caller: self.caller.map(String::from),
        }
    }
}

impl Header {
    fn borrow(&self) -> RecHead<'_> {
        RecHead {
            pri: self.pri,
            seq: self.seq,
            ts_usec: self.ts_usec,
            cont: self.cont,
            caller: self.caller.as_deref(),
        }
    }
}

struct Ctx<'a> {
    metrics: &'a Metrics,
    limits: &'a Limits,
    out: &'a mut Vec<NewReport>,
    scratch: &'a mut Vec<u8>,
}

/// Sequence numbers this far below the expected one mean the sender rebooted.
const RESTART_GAP: u64 = 100_000;

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        s: &mut Sender,
        h: RecHead<'_>,
        off: u32,
        total: u32,
        text: &[u8],
        now: Instant,
        stamp: u64,
    ) {
        if let Some(next) = s.next_seq {
            if h.seq < next && next - h.seq < RESTART_GAP {
                self.metrics.drop_nc("late");
                return;
            }
        }
        s.frag_max = s
            .frag_max
            .max((total as usize).min(self.limits.max_message));
        let got = s.frags.add(h.seq, off, total, text, h.owned(), stamp);
        for _ in 0..s.frags.take_evicted() {
            self.metrics.drop_nc("fragment_overflow");
        }
        match got {
            Frag::Complete(header, body) => self.record(s, header.borrow(), &body, now),
            Frag::Pending => {}
            Frag::Rejected(FragReject::Duplicate) => self.metrics.drop_nc("duplicate"),
            Frag::Rejected(FragReject::Malformed) => self.metrics.drop_nc("malformed"),
        }
    }

    /// A complete extended record: put it in sequence order.
    fn record(&mut self, s: &mut Sender, h: RecHead<'_>, body: &[u8], now: Instant) {
        let seq = h.seq;
        // Fast path: the record the stream waits for, nothing held back.
        if s.next_seq == Some(seq) && s.held.is_empty() {
            s.next_seq = Some(seq + 1);
            self.emit(s, h, body);
            return;
        }
        if let Some(next) = s.next_seq {
            if seq < next {
                if next - seq >= RESTART_GAP {
                    // Folklore: the sender rebooted; its sequence restarted.
                    while !s.held.is_empty() {
                        self.release_first(s);
                        self.drain(s);
                    }
                    self.flush(s);
                    s.next_seq = None;
                } else {
                    self.metrics.drop_nc("late");
                    return;
                }
            }
        }
        if s.held.contains_key(&seq) {
            self.metrics.drop_nc("duplicate");
            return;
        }
        s.held_bytes += body.len() + HELD_OVERHEAD;
        s.held.insert(
            seq,
            Held {
                at: now,
                header: h.owned(),
                body: body.to_vec(),
            },
        );
        self.drain(s);
        while s.held.len() > self.limits.reorder_window {
            self.release_first(s);
            self.drain(s);
        }
    }

    /// Release held records while they are in sequence.
    fn drain(&mut self, s: &mut Sender) {
        while let Some(next) = s.next_seq {
            match s.held.remove(&next) {
                Some(h) => {
                    s.held_bytes -= (h.body.len() + HELD_OVERHEAD).min(s.held_bytes);
                    s.next_seq = Some(next + 1);
                    self.emit(s, h.header.borrow(), &h.body);
                }
                None => break,
            }
        }
    }

    /// Give up waiting: release the lowest held record (skipping the gap before it).
    fn release_first(&mut self, s: &mut Sender) {
        if let Some((seq, h)) = s.held.pop_first() {
            s.held_bytes -= (h.body.len() + HELD_OVERHEAD).min(s.held_bytes);
            s.next_seq = Some(seq + 1);
            self.emit(s, h.header.borrow(), &h.body);
        }
    }

    fn emit(&mut self, s: &mut Sender, h: RecHead<'_>, body: &[u8]) {
        // The message ends at the first raw newline; the dictionary follows.
        let (msg, dict) = match memchr(b'\n', body) {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &[][..]),
        };
        for d in dict.split(|&b| b == b'\n') {
            if let Some(r) = d.strip_prefix(b" release=") {
                if let Ok(r) = std::str::from_utf8(r) {
                    s.release = Some(r.trim().to_string());
                }
            }
        }
        // Each line goes to the parser as a /dev/kmsg record (the format kmortem-oops reads):
        // `pri,seq,ts,flag[,caller=..];text`, built in a reused buffer.
        let mut rec = std::mem::take(self.scratch);
        rec.clear();
        push_u64(&mut rec, u64::from(h.pri));
        rec.push(b',');
        push_u64(&mut rec, h.seq);
        rec.push(b',');
        push_u64(&mut rec, h.ts_usec);
        rec.extend_from_slice(if h.cont { b",c" } else { b",-" });
        if let Some(c) = h.caller {
            rec.extend_from_slice(b",caller=");
            rec.extend_from_slice(c.as_bytes());
        }
        rec.push(b';');
        let head_len = rec.len();
        // Fast path: most messages have no escapes (no `\x..`) and so are one line as they are.
        if memchr(b'\\', msg).is_none() {
            rec.extend_from_slice(msg);
            self.line(s, &rec);
        } else {
            // A multi-line message (escaped `\x0a`) becomes one record per line, re-escaping
            // what /dev/kmsg escapes so that each record stays one line.
            let text = unescape_kmsg(msg);
            let needs = |b: u8| b == b'\\' || (b < 0x20 && b != b'\t') || b == 0x7f;
            for line in text.split(|&b| b == b'\n') {
                rec.truncate(head_len);
                for &b in line {
                    if needs(b) {
                        rec.extend_from_slice(b"\\x");
                        rec.push(HEX[usize::from(b >> 4)]);
                        rec.push(HEX[usize::from(b & 15)]);
                    } else {
                        rec.push(b);
                    }
                }
                self.line(s, &rec);
            }
        }
        *self.scratch = rec;
    }

    /// Plain netconsole: console text; lines may be split across datagrams.
    fn plain(&mut self, s: &mut Sender, data: &[u8]) {
        let mut rest = data;
        while let Some(i) = memchr(b'\n', rest) {
            let (l, r) = rest.split_at(i);
            if s.partial.is_empty() {
                self.line(s, l);
            } else {
                let mut line = std::mem::take(&mut s.partial);
                line.extend_from_slice(l);
                self.line(s, &line);
            }
            rest = &r[1..];
        }
        if !rest.is_empty() {
            s.partial.extend_from_slice(rest);
            if s.partial.len() > self.limits.max_partial {
                let line = std::mem::take(&mut s.partial);
                self.line(s, &line);
            }
        }
    }

    fn line(&mut self, s: &mut Sender, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.metrics.netconsole_lines.inc();
        s.line_no += 1;
        let mut keep = s.take_spare();
        keep.clear();
        keep.extend_from_slice(line);
        s.lines_bytes += keep.capacity();
        s.lines.push_back(keep);
        if s.lines.len() > self.limits.raw_lines {
            if let Some(b) = s.lines.pop_front() {
                s.lines_bytes -= b.capacity().min(s.lines_bytes);
                s.give_spare(b);
            }
            s.first_line += 1;
        }
        s.dirty = true;
        #[cfg(test)]
        s.fed.push(String::from_utf8_lossy(line).into_owned());
        let reports = s.scanner.push_line(line);
        if !reports.is_empty() {
            self.found(s, reports);
        }
        if s.scanner.is_idle() {
            // No report open: none can reach back to the lines seen so far.
            s.forget_lines();
        }
    }

    fn found(&mut self, s: &mut Sender, reports: Vec<kmortem_oops::Report>) {
        let now = time::now_ms();
        let first_kept = s.first_line;
        for mut r in reports {
            let raw = if r.start_line >= first_kept
                && r.start_line <= r.end_line
                && r.end_line <= s.line_no
                && r.start_line > 0
            {
                let mut raw = Vec::new();
                for l in s
                    .lines
                    .range(r.start_line - first_kept..=r.end_line - first_kept)
                {
                    raw.extend_from_slice(l);
                    raw.push(b'\n');
                }
                String::from_utf8_lossy(&raw).into_owned()
            } else {
                r.text.clone()
            };
            if r.kernel_release.is_none() {
                r.kernel_release = s.release.clone();
            }
            self.out.push(NewReport {
                host: s.host.clone(),
                source: "netconsole".into(),
                received_at: now,
                raw,
                report: r,
                key: None,
                origin: Origin::Unauthenticated,
            });
        }
    }

    /// Close the sender's open report (end of input) and start a new scanner.
    fn flush(&mut self, s: &mut Sender) {
        if !s.partial.is_empty() {
            let line = std::mem::take(&mut s.partial);
            self.line(s, &line);
        }
        let scanner = std::mem::take(&mut s.scanner);
        let reports = scanner.finish();
        if !reports.is_empty() {
            self.found(s, reports);
        }
        // Line numbers restart with the new scanner.
        s.line_no = 0;
        s.forget_lines();
        s.dirty = false;
    }

    /// A sender over its own cap: give up waiting for gaps and fragments, then cut its open
    /// report if that is not enough.
    fn shrink(&mut self, s: &mut Sender) {
        self.metrics.drop_nc("sender_memory");
        while !s.held.is_empty() {
            self.release_first(s);
            self.drain(s);
        }
        s.frags.clear();
        if s.bytes(self.limits) > self.limits.sender_memory {
            self.flush(s);
        }
        s.spare.clear();
        s.spare_bytes = 0;
    }

    fn close(&mut self, mut s: Sender) {
        while !s.held.is_empty() {
            self.release_first(&mut s);
            self.drain(&mut s);
        }
        self.flush(&mut s);
    }
}

impl Sender {
    /// Drop the kept raw lines (their buffers are reused).
    fn forget_lines(&mut self) {
        self.first_line = self.line_no + 1;
        self.lines_bytes = 0;
        while let Some(b) = self.lines.pop_front() {
            self.give_spare(b);
        }
    }

    fn take_spare(&mut self) -> Vec<u8> {
        let b = self.spare.pop().unwrap_or_default();
        self.spare_bytes -= b.capacity().min(self.spare_bytes);
        b
    }

    /// Keep a line buffer for reuse: at most 64 of them, none over 4 KiB (a burst of long
    /// lines does not stay allocated).
    fn give_spare(&mut self, b: Vec<u8>) {
        if self.spare.len() < 64 && b.capacity() <= 4096 {
            self.spare_bytes += b.capacity();
            self.spare.push(b);
        }
    }

    /// Bytes this sender holds, as counted against the budgets: the buffers it owns, its open
    /// report twice (the raw lines here, the parser's copy in the scanner), half-assembled
    /// fragments at the largest size this sender has announced (the reassembler allocates the
    /// whole message at its first fragment), and a fixed cost for the sender itself.
    fn bytes(&self, limits: &Limits) -> usize {
        SENDER_OVERHEAD
            + self.held_bytes
            + 2 * self.lines_bytes
            + self.spare_bytes
            + self.partial.capacity()
            + self.frags.len() * self.frag_max.min(limits.max_message)
    }

    /// Eviction order, lowest first: unnamed before named, idle before mid-report, the least
    /// advanced first, and among equals the newest first.
    fn rank(&self) -> SenderRank {
        let mid_report = !self.scanner.is_idle() || !self.held.is_empty() || !self.frags.is_empty();
        (
            self.known,
            mid_report,
            self.advance,
            std::cmp::Reverse(self.first_seen),
        )
    }
}

type SenderRank = (bool, bool, u64, std::cmp::Reverse<Instant>);

/// What a sender costs besides its buffers (its struct, the parser's state, the table entry).
const SENDER_OVERHEAD: usize = 4096;
/// What a held record costs besides its body.
const HELD_OVERHEAD: usize = 96;

fn s_mem(senders: &HashMap<IpAddr, Sender>, ip: IpAddr) -> usize {
    senders.get(&ip).map_or(0, |s| s.mem)
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        ip => ip,
    }
}

/// A network for `--netconsole-allow`: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Net, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?,
        };
        Ok(Net { addr, prefix })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

use memchr::memchr;

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> Receiver {
        Receiver::detached(Arc::new(Metrics::new()), Limits::default())
    }

    fn lines_of(r: &Receiver, ip: IpAddr) -> Vec<String> {
        r.senders[&ip].fed.clone()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn fragments_any_order() {
        let mut r = rx();
        let now = Instant::now();
        let body = "x".repeat(1500) + "END";
        let total = body.len();
        let f1 = format!("4,7,100,-,ncfrag=1000/{total};{}", &body[1000..]);
        let f0 = format!("4,7,100,-,ncfrag=0/{total};{}", &body[..1000]);
        r.datagram(IP, f1.as_bytes(), now);
        assert!(lines_of(&r, IP).is_empty());
        r.datagram(IP, f0.as_bytes(), now);
        r.tick(now + Duration::from_secs(3));
        let lines = lines_of(&r, IP);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("4,7,100,-;xxx") && lines[0].ends_with("END"));
    }

    #[test]
    fn reorder_and_gap() {
        let mut r = rx();
        let now = Instant::now();
        for seq in [10u64, 12, 11, 14] {
            r.datagram(IP, format!("6,{seq},1,-;m{seq}").as_bytes(), now);
        }
        // Nothing is known about the start: all wait for `hold`.
        r.tick(now + Duration::from_secs(3));
        let got: Vec<String> = lines_of(&r, IP)
            .iter()
            .map(|l| l.split(';').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(got, ["m10", "m11", "m12", "m14"]);
        // A late 13 is dropped, a repeated 14 too (both are behind the stream now).
        r.datagram(IP, b"6,13,1,-;m13", now);
        r.datagram(IP, b"6,14,1,-;m14", now);
        r.datagram(IP, b"6,15,1,-;m15", now);
        assert_eq!(lines_of(&r, IP).len(), 5);
        assert!(r.metrics.encode().contains("reason=\"late\"} 2"));
    }

    #[test]
    fn reboot_restarts_sequence() {
        let mut r = rx();
        let now = Instant::now();
        r.datagram(IP, b"6,500000,1,-;before", now);
        r.tick(now + Duration::from_secs(3));
        r.datagram(IP, b"6,0,1,-;after", now + Duration::from_secs(3));
        r.datagram(IP, b"6,1,1,-;after2", now + Duration::from_secs(3));
        r.tick(now + Duration::from_secs(6));
        let lines = lines_of(&r, IP);
        assert!(lines.iter().any(|l| l.ends_with(";after2")), "{lines:?}");
    }

    #[test]
    fn plain_partial_lines_and_escapes() {
        let mut r = rx();
        let now = Instant::now();
        r.datagram(IP, b"[ 1.0] hello ", now);
        r.datagram(IP, b"world\n[ 1.1] second\n", now);
        assert_eq!(lines_of(&r, IP), ["[ 1.0] hello world", "[ 1.1] second"]);
        let mut r = rx();
        r.datagram(IP, b"6,1,1,-;a\\x0ab\n SUBSYSTEM=x\n release=6.1.0-9", now);
        r.tick(now + Duration::from_secs(3));
        assert_eq!(lines_of(&r, IP), ["6,1,1,-;a", "6,1,1,-;b"]);
        assert_eq!(r.senders[&IP].release.as_deref(), Some("6.1.0-9"));
    }

    #[test]
    fn host_is_the_ip_unless_named() {
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
        let names = BTreeMap::from([(other, "k8s-master-1".to_string())]);
        let mut r = rx().with_names(names);
        let now = Instant::now();
        r.datagram(IP, b"hello\n", now);
        r.datagram(other, b"hello\n", now);
        assert_eq!(r.senders[&IP].host, "127.0.0.2");
        assert_eq!(r.senders[&other].host, "k8s-master-1");
        // IPv4-mapped IPv6 sources (a dual-stack socket) use the IPv4 name.
        let mapped: IpAddr = "::ffff:127.0.0.3".parse().unwrap();
        assert_eq!(r.host_name(mapped).0, "k8s-master-1");
    }

    #[test]
    fn bounded_under_half_sent_fragments_and_garbage() {
        let mut r = rx();
        let now = Instant::now();
        for seq in 0..10_000u64 {
            let d = format!("4,{seq},1,-,ncfrag=0/16000;{}", "y".repeat(900));
            r.datagram(IP, d.as_bytes(), now);
        }
        assert!(r.senders[&IP].frags.len() <= Limits::default().max_fragments);
        // Raw lines are kept only while a report is open.
        assert!(r.senders[&IP].lines.is_empty());
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 + i));
            r.datagram(ip, b"\xff\xfe garbage", now);
        }
        assert!(r.senders.len() <= Limits::default().max_senders);
        let m = r.metrics.encode();
        assert!(m.contains("fragment_overflow"), "{m}");
        assert!(m.contains("too_many_senders"), "{m}");
        // A long partial line is cut.
        r.datagram(IP, "z".repeat(100_000).as_bytes(), now);
        assert!(r.senders[&IP].partial.len() <= Limits::default().max_partial);
    }

    #[test]
    fn allow_list_and_networks() {
        let net = |s: &str| s.parse::<Net>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.10").contains(ip("127.0.0.10")));
        assert!(!net("127.0.0.10").contains(ip("127.0.0.11")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(
            net("10.0.0.0/8").contains(ip("::ffff:10.1.1.1")),
            "IPv4-mapped"
        );
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!net("2001:db8::/32").contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Net>().is_err(), "{bad}");
        }
        let mut r = rx().with_allow(vec![net("127.0.0.0/24")]);
        let now = Instant::now();
        r.datagram(IP, b"hello\n", now);
        r.datagram(ip("127.0.1.2"), b"hello\n", now);
        assert_eq!(r.senders.len(), 1);
        assert!(r.metrics.encode().contains("reason=\"not_allowed\"} 1"));
    }

    /// A flood of 10,000 new addresses, each holding as much as it can (a report opened,
    /// sequence gaps, half-sent fragments), while one sender is in the middle of a crash: the
    /// bytes held never go over the budget, and the crash comes out whole.
    #[test]
    fn flood_of_new_senders_never_evicts_one_mid_report() {
        let limits = Limits {
            max_senders: 256,
            memory: 4 << 20,
            ..Limits::default()
        };
        let mut r = Receiver::detached(Arc::new(Metrics::new()), limits);
        let now = Instant::now();
        let crash: Vec<String> = include_str!("../../../examples/null-deref.log")
            .lines()
            .map(|l| l[l.find("] ").map_or(0, |i| i + 2)..].to_string())
            .collect();
        let mut peak = 0;
        let mut next = 0;
        // The crash has begun when the flood starts.
        while next < 10 {
            let d = format!("4,{},1,-;{}", 5000 + next, crash[next]);
            r.datagram(IP, d.as_bytes(), now);
            next += 1;
        }
        let filler = "f".repeat(900);
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x7f01_0000 + i));
            let seq = 100 + u64::from(i);
            for d in [
                format!("4,{seq},1,-;BUG: kernel NULL pointer dereference, address: 08"),
                format!("4,{},1,-;{filler}", seq + 3),
                format!("4,{},1,-,ncfrag=0/16000;{filler}", seq + 7),
                format!("4,{},1,-,ncfrag=0/16000;{filler}", seq + 8),
            ] {
                r.datagram(ip, d.as_bytes(), now);
                peak = peak.max(r.bytes());
            }
            if i % 300 == 0 && next < crash.len() {
                let d = format!("4,{},1,-;{}", 5000 + next, crash[next]);
                r.datagram(IP, d.as_bytes(), now);
                next += 1;
            }
        }
        while next < crash.len() {
            let d = format!("4,{},1,-;{}", 5000 + next, crash[next]);
            r.datagram(IP, d.as_bytes(), now);
            next += 1;
        }
        r.tick(now + Duration::from_secs(3));
        r.flush_all();
        let reports = r.take_reports();
        let mine: Vec<&NewReport> = reports.iter().filter(|n| n.host == "127.0.0.2").collect();
        let m = r.metrics.encode();
        println!(
            "flood: peak {} KiB of a {} KiB budget; {} senders left; {} reports ({} mine)",
            peak >> 10,
            limits.memory >> 10,
            r.senders.len(),
            reports.len(),
            mine.len()
        );
        assert!(peak <= limits.memory + limits.sender_memory, "peak {peak}");
        assert_eq!(mine.len(), 1, "{m}");
        assert!(mine[0].report.title.contains("NULL pointer dereference"));
        assert!(mine[0].raw.contains("Call Trace:"), "{}", mine[0].raw);
        assert_eq!(mine[0].origin, Origin::Unauthenticated);
        assert!(
            m.contains("reason=\"memory\"") || m.contains("too_many_senders"),
            "{m}"
        );
    }

    /// One sender alone cannot hold more than its cap: its reorder window and fragments go
    /// first, and its open report is cut when that is not enough.
    #[test]
    fn one_sender_is_capped() {
        let limits = Limits {
            sender_memory: 64 << 10,
            ..Limits::default()
        };
        let mut r = Receiver::detached(Arc::new(Metrics::new()), limits);
        let now = Instant::now();
        let body = "g".repeat(1000);
        // Every other sequence number: each record waits for a gap.
        for k in 0..500u64 {
            r.datagram(IP, format!("4,{},1,-;{body}", 10 + 2 * k).as_bytes(), now);
            assert!(
                r.senders[&IP].mem <= limits.sender_memory,
                "{}",
                r.senders[&IP].mem
            );
        }
        assert!(r.metrics.encode().contains("reason=\"sender_memory\""));
        assert!(r.bytes() <= limits.sender_memory);
    }
}

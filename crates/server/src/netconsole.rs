//! The netconsole UDP receiver.
//!
//! Takes plain netconsole (console text, one or more lines or a partial line per datagram) and
//! extended netconsole (`[release,]<level>,<seq>,<ts>,<flags>[,ncfrag=<off>/<len>];text`,
//! parsed by [`kmortem_oops::input::parse_kmsg`]). Per sender (source IP address) it
//! reassembles fragments, puts extended records back in sequence order, and cuts the stream
//! into reports with a [`kmortem_oops::Scanner`].
//!
//! Memory is bounded: a fixed number of senders, of half-assembled messages per sender, of
//! records waiting for a gap to fill, and of bytes in a partial line. Whatever does not fit is
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
    last_seen: Instant,
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
    fn new(host: String, now: Instant, limits: &Limits) -> Self {
        Sender {
            host,
            last_seen: now,
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
    limits: Limits,
    senders: HashMap<IpAddr, Sender>,
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
            limits,
            senders: HashMap::new(),
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
            limits,
            senders: HashMap::new(),
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

    fn host_name(&self, ip: IpAddr) -> String {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            ip => ip,
        };
        self.names
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| ip.to_string())
    }

    /// Handle one datagram from `from`.
    pub fn datagram(&mut self, from: IpAddr, data: &[u8], now: Instant) {
        self.metrics.netconsole_datagrams.inc();
        if data.is_empty() {
            self.metrics.drop_nc("malformed");
            return;
        }
        if !self.senders.contains_key(&from) {
            if self.senders.len() >= self.limits.max_senders && !self.evict_one(now) {
                self.metrics.drop_nc("too_many_senders");
                return;
            }
            let host = self.host_name(from);
            self.senders
                .insert(from, Sender::new(host, now, &self.limits));
            // inc/dec, not set: several receivers (one per worker thread) share the gauge.
            self.metrics.netconsole_senders.inc();
        }
        let limits = self.limits;
        let stamp = stamp(self.epoch, now);
        let Some(s) = self.senders.get_mut(&from) else {
            return;
        };
        s.last_seen = now;
        let mut ctx = Ctx {
            metrics: &self.metrics,
            limits: &limits,
            out: &mut self.out,
            scratch: &mut self.scratch,
        };
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
    }

    /// Evict the sender silent the longest, if it has been silent for a while.
    fn evict_one(&mut self, now: Instant) -> bool {
        let victim = self
            .senders
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_seen) > Duration::from_secs(60))
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                if let Some(s) = self.senders.remove(&ip) {
                    self.metrics.netconsole_senders.dec();
                    let mut ctx = Ctx {
                        metrics: &self.metrics,
                        limits: &self.limits,
                        out: &mut self.out,
                        scratch: &mut self.scratch,
                    };
                    ctx.close(s);
                }
                true
            }
            None => false,
        }
    }

    /// Time passes: expire fragments, skip gaps that waited too long, close idle reports.
    pub fn tick(&mut self, now: Instant) {
        let limits = self.limits;
        let epoch = self.epoch;
        let mut forget = Vec::new();
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
        }
        for ip in forget {
            if let Some(s) = self.senders.remove(&ip) {
                self.metrics.netconsole_senders.dec();
                let mut ctx = Ctx {
                    metrics: &self.metrics,
                    limits: &limits,
                    out: &mut self.out,
                    scratch: &mut self.scratch,
                };
                ctx.close(s);
            }
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
        let mut keep = s.spare.pop().unwrap_or_default();
        keep.clear();
        keep.extend_from_slice(line);
        s.lines.push_back(keep);
        if s.lines.len() > self.limits.raw_lines {
            if let Some(b) = s.lines.pop_front() {
                s.spare.push(b);
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
        while let Some(b) = self.lines.pop_front() {
            if self.spare.len() < 64 {
                self.spare.push(b);
            }
        }
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
        assert_eq!(r.host_name(mapped), "k8s-master-1");
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
}

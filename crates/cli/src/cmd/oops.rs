//! `kmortem oops`: find every crash report in logs.

use anyhow::Result;
use kmortem_oops::{Context, Report};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Find every kernel crash report in logs and print each with its syzkaller-style title.
///
/// Reads console logs, `dmesg` / `dmesg -T`, syslog and `journalctl -k` (`host kernel: ...`),
/// `/dev/kmsg` records and extended netconsole lines, in any mix. Lines with caller ids
/// (`[T123]`, `[C1]`) are de-interleaved so that each report keeps only its own task's lines.
/// CRLF, invalid UTF-8, NUL bytes, endless lines and logs cut in the middle of a report are all
/// fine. OOM kills are reported as events (kind `oom`), not crashes.
///
/// Examples:
///   kmortem oops /var/log/kern.log
///   journalctl -k -b -1 | kmortem oops
///   kmortem oops --json console-*.log > reports.json
///
/// A file that cannot be read is reported on stderr (one line naming it); the other files are
/// still read, and the exit status is then 2. Otherwise the status is 0, whether crashes were
/// found or not (use `--json` and count the array to script on that).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Log files to read; `-` or nothing reads standard input.
    pub files: Vec<std::path::PathBuf>,
    /// Print one JSON array of reports (schema: docs/json/oops.md).
    #[arg(long)]
    pub json: bool,
    /// Leave the full report text out of the human output (it is always in the JSON).
    #[arg(long, short = 'q')]
    pub brief: bool,
}

/// Where reports go as soon as they are complete: the output is streamed, so memory stays
/// bounded however many reports a log holds.
struct Sink<W: Write> {
    out: W,
    json: bool,
    brief: bool,
    count: usize,
    /// The JSON is made on a helper thread (started with the first report).
    json_thread: Option<JsonThread>,
}

/// Pretty JSON of the report batches, made on a thread of its own while the scanner reads on
/// (issue 15: a crash-dense log has tens of MB of it, a fifth of the main thread's work). The
/// bytes come back in batch order and are written here, so output and write errors stay where
/// they were. At most [`JsonThread::QUEUE`] batches wait.
struct JsonThread {
    tx: Option<std::sync::mpsc::SyncSender<(Vec<Report>, String, usize)>>,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Batches sent whose bytes have not come back yet.
    pending: usize,
}

impl JsonThread {
    const QUEUE: usize = 4;

    fn start() -> std::io::Result<JsonThread> {
        let (tx, work) = std::sync::mpsc::sync_channel::<(Vec<Report>, String, usize)>(Self::QUEUE);
        let (done, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("kmortem-json".into())
            .spawn(move || {
                for (mut batch, source, before) in work {
                    let mut buf = Vec::new();
                    let mut source = Some(source);
                    // By first line, as a stable sort of the reports would order them (the
                    // reports themselves are big to move).
                    let mut order: Vec<usize> = (0..batch.len()).collect();
                    order.sort_by_key(|&i| batch[i].start_line);
                    for (i, &k) in order.iter().enumerate() {
                        let r = &mut batch[k];
                        // Pretty JSON written by hand: serde_json's bytes, a fraction of its
                        // cost (`kmortem_oops::Report::write_json_pretty`).
                        buf.extend_from_slice(if before + i == 0 { b"[\n" } else { b",\n" });
                        r.source = source.take();
                        r.write_json_pretty(&mut buf);
                        source = r.source.take();
                    }
                    if done.send(buf).is_err() {
                        return;
                    }
                }
            })?;
        Ok(JsonThread {
            tx: Some(tx),
            rx,
            handle: Some(handle),
            pending: 0,
        })
    }

    fn lost() -> std::io::Error {
        std::io::Error::other("the JSON thread stopped")
    }

    /// Hand a batch over (in completion order; the thread sorts it); write whatever is ready.
    fn send<W: Write>(
        &mut self,
        batch: Vec<Report>,
        source: &str,
        before: usize,
        out: &mut W,
    ) -> std::io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(Self::lost)?;
        tx.send((batch, source.to_string(), before))
            .map_err(|_| Self::lost())?;
        self.pending += 1;
        while let Ok(bytes) = self.rx.try_recv() {
            self.pending -= 1;
            out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Write the rest and stop the thread.
    fn finish<W: Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.tx = None;
        while self.pending > 0 {
            let bytes = self.rx.recv().map_err(|_| Self::lost())?;
            self.pending -= 1;
            out.write_all(&bytes)?;
        }
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| Self::lost())?;
        }
        Ok(())
    }
}

impl<W: Write> Sink<W> {
    fn emit(&mut self, batch: Vec<Report>, source: &str) -> std::io::Result<()> {
        let mut batch = batch;
        if batch.is_empty() {
            return Ok(());
        }
        if self.json {
            let before = self.count;
            self.count += batch.len();
            if self.json_thread.is_none() {
                self.json_thread = Some(JsonThread::start()?);
            }
            let t = self.json_thread.as_mut().expect("started");
            return t.send(batch, source, before, &mut self.out);
        }
        batch.sort_by_key(|r| r.start_line);
        for mut r in batch {
            r.source = Some(source.to_string());
            self.count += 1;
            if self.count > 1 {
                writeln!(self.out)?;
            }
            print_human(&mut self.out, self.count, &r, self.brief)?;
        }
        Ok(())
    }

    fn close(&mut self, failed: bool) -> std::io::Result<()> {
        if let Some(t) = self.json_thread.as_mut() {
            t.finish(&mut self.out)?;
        }
        if self.json {
            self.out
                .write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?;
        } else if self.count == 0 && !failed {
            writeln!(self.out, "no crash report found")?;
        }
        self.out.flush()
    }
}

/// Scan one input stream in 1 MB chunks, emitting reports as they complete.
fn scan<W: Write>(mut reader: impl Read, source: &str, sink: &mut Sink<W>) -> std::io::Result<()> {
    let mut scanner = kmortem_oops::Scanner::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Keep what was found before the error.
                sink.emit(scanner.finish(), source)?;
                return Err(e);
            }
        };
        sink.emit(scanner.feed(&buf[..n]), source)?;
    }
    sink.emit(scanner.finish(), source)
}

enum Failure {
    /// The whole message, already a sentence.
    Said(String),
    Io(std::io::Error),
}

/// [`scan`], after a look at the first bytes: a vmcore or any binary file is refused with a
/// message that says what it is and how to get its log, instead of "crashes" found in binary.
fn scan_checked<W: Write>(
    mut reader: impl Read,
    source: &str,
    sink: &mut Sink<W>,
) -> Result<(), Failure> {
    let mut head = Vec::with_capacity(4096);
    (&mut reader)
        .take(4096)
        .read_to_end(&mut head)
        .map_err(Failure::Io)?;
    if let Some(kind) = kmortem_oops::input::binary_kind(&head) {
        let file = if source == "<stdin>" { "FILE" } else { source };
        return Err(Failure::Said(format!(
            "{source}: {kind}, not a log; for the log inside a vmcore run `kmortem log {file} | kmortem oops`"
        )));
    }
    scan(std::io::Cursor::new(head).chain(reader), source, sink).map_err(Failure::Io)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let files = if args.files.is_empty() {
        vec!["-".into()]
    } else {
        args.files.clone()
    };
    let stdout = std::io::stdout();
    let mut sink = Sink {
        out: std::io::BufWriter::new(super::SafeWriter::new(stdout.lock(), !args.json)),
        json: args.json,
        brief: args.brief,
        count: 0,
        json_thread: None,
    };
    let mut failed = false;
    for f in &files {
        let name = f.display().to_string();
        let res = if f.as_os_str() == "-" {
            scan_checked(std::io::stdin().lock(), "<stdin>", &mut sink)
        } else if let Some(why) = super::stream::check_log_path(f) {
            Err(Failure::Said(why))
        } else {
            match std::fs::File::open(f) {
                Ok(file) => scan_checked(file, &name, &mut sink),
                Err(e) => Err(Failure::Io(e)),
            }
        };
        match res {
            Ok(()) => {}
            Err(Failure::Said(why)) => {
                eprintln!("kmortem: {why}");
                failed = true;
            }
            Err(Failure::Io(e)) => {
                eprintln!("kmortem: cannot read {name}: {}", super::io_reason(&e));
                failed = true;
            }
        }
    }
    sink.close(failed)?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn hex(v: u64) -> String {
    format!("{v:#018x}")
}

fn sym(function: &str, off: Option<u64>, size: Option<u64>, module: Option<&str>) -> String {
    let mut s = function.to_string();
    if let Some(o) = off {
        s.push_str(&format!("+{o:#x}"));
        if let Some(z) = size {
            s.push_str(&format!("/{z:#x}"));
        }
    }
    if let Some(m) = module {
        s.push_str(&format!(" [{m}]"));
    }
    s
}

fn context_name(c: Context) -> &'static str {
    match c {
        Context::Task => "<TASK>",
        Context::Irq => "<IRQ>",
        Context::Softirq => "<SOFTIRQ>",
        Context::Nmi => "<NMI>",
        Context::Exception => "<exception stack>",
    }
}

/// The layout kernel engineers already read: a header, then the oops fields, then the trace.
fn print_human(out: &mut impl Write, n: usize, r: &Report, brief: bool) -> std::io::Result<()> {
    writeln!(out, "#{n} {}", r.title)?;
    let src = r.source.as_deref().unwrap_or("-");
    writeln!(
        out,
        "  lines:     {src}:{}-{}{}",
        r.start_line,
        r.end_line,
        match (r.truncated, r.truncated_reason.as_deref()) {
            (true, Some("line_cap")) => " (cut: the report is longer than 2000 lines)",
            (true, _) => " (log ends inside the report)",
            _ => "",
        }
    )?;
    writeln!(out, "  kind:      {} ({})", r.kind.as_str(), r.crash_type)?;
    if r.corrupted {
        writeln!(
            out,
            "  corrupted: yes: {}",
            r.corrupted_reason.as_deref().unwrap_or("?")
        )?;
    }
    for a in &r.alt_titles {
        writeln!(out, "  also:      {a}")?;
    }
    if let Some(rel) = &r.kernel_release {
        writeln!(
            out,
            "  kernel:    {rel} {}",
            r.kernel_build.as_deref().unwrap_or("")
        )?;
    }
    if r.cpu.is_some() || r.pid.is_some() {
        let cpu = r.cpu.map_or("?".into(), |c| c.to_string());
        let pid = r.pid.map_or("?".into(), |p| p.to_string());
        writeln!(
            out,
            "  task:      CPU {cpu}, PID {pid}, comm {}",
            r.comm.as_deref().unwrap_or("?")
        )?;
    }
    if let Some(t) = &r.taint {
        writeln!(out, "  taint:     {t}")?;
    }
    if let Some(h) = &r.hardware {
        writeln!(out, "  hardware:  {h}")?;
    }
    if let Some(ip) = &r.ip {
        let mut s = match &ip.function {
            Some(f) => sym(f, ip.offset, ip.size, ip.module.as_deref()),
            None => String::new(),
        };
        if let Some(a) = ip.address {
            s.push_str(&format!(" ({})", hex(a)));
        }
        writeln!(out, "  ip:        {}", s.trim())?;
    }
    if let Some(a) = r.fault_address {
        writeln!(out, "  fault at:  {}", hex(a))?;
    }
    if let Some(p) = &r.panic_message {
        writeln!(out, "  panic:     {p}")?;
    }
    writeln!(out, "  signature: {}", r.signature)?;
    if let Some(g) = &r.guilty_file {
        writeln!(out, "  guilty:    {g}")?;
    }
    if !r.frames.is_empty() {
        let mut stack = "";
        let mut ctx: Option<Context> = None;
        for f in &r.frames {
            if f.stack != stack {
                stack = &f.stack;
                ctx = None;
                writeln!(out, "  {}:", stack.replace('_', " "))?;
            }
            if ctx != Some(f.context) {
                if ctx.is_some() || f.context != Context::Task {
                    writeln!(out, "      {}", context_name(f.context))?;
                }
                ctx = Some(f.context);
            }
            let mark = if f.reliable { "  " } else { "? " };
            let mut line = format!(
                "    {mark}{}",
                sym(&f.function, f.offset, f.size, f.module.as_deref())
            );
            if let Some(src) = &f.source {
                line.push_str(&format!(" ({src})"));
            }
            if !f.reliable {
                line.push_str("   [unreliable]");
            }
            writeln!(out, "{line}")?;
        }
    }
    if let Some(c) = &r.code {
        let mut s = String::new();
        for (i, b) in c.bytes.iter().enumerate() {
            if Some(i) == c.trap_index {
                s.push_str(&format!("<{b:02x}> "));
            } else {
                s.push_str(&format!("{b:02x} "));
            }
        }
        let trap = c.trap_index.map_or("no trap marker".to_string(), |t| {
            format!("trap at byte {t}")
        });
        writeln!(out, "  code ({}, {trap}):", c.arch)?;
        if c.arch == "x86_64" {
            writeln!(out, "    {}", s.trim_end())?;
        } else {
            // Instruction words as the kernel printed them, the faulting one in `(..)`.
            writeln!(out, "    {}", c.raw)?;
        }
    }
    if !r.modules.is_empty() {
        writeln!(out, "  modules:   {}", r.modules.join(" "))?;
    }
    if !brief && r.frames.is_empty() {
        // Nothing structured to show: print the report as it was logged.
        for l in r.text.lines().take(20) {
            writeln!(out, "  | {l}")?;
        }
    }
    Ok(())
}

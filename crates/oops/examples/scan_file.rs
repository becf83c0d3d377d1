//! Throughput check: `cargo run --release -p kmortem-oops --example scan_file -- FILE` (the
//! feed path and its JSON; `PUSH_LINE=1` times the line-by-line path too). Under callgrind it
//! gives instruction counts that the machine's load does not blur.
fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let data = std::fs::read(&path).expect("read");
    let t0 = std::time::Instant::now();
    kmortem_oops::parse(b"BUG: warm up the tables\n");
    println!("init {:.2} s", t0.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut s = kmortem_oops::Scanner::new();
    let mut n = 0;
    let mut reports = Vec::new();
    for chunk in data.chunks(1 << 20) {
        let r = s.feed(chunk);
        n += r.len();
        reports.extend(r);
    }
    n += s.finish().len();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{n} reports, {:.2} s, {:.0} MB/s",
        dt,
        data.len() as f64 / 1048576.0 / dt
    );
    // What `kmortem oops --json` adds: pretty JSON of every report.
    let t = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(std::io::sink());
    for r in &reports {
        serde_json::to_writer_pretty(&mut out, r).unwrap();
    }
    println!("json: {:.2} s", t.elapsed().as_secs_f64());
    if std::env::var_os("PUSH_LINE").is_none() {
        return;
    }
    let t = std::time::Instant::now();
    let mut lines = 0;
    let mut s = kmortem_oops::Scanner::new();
    for l in data.split(|&b| b == b'\n') {
        lines += 1;
        s.push_line(l);
    }
    println!(
        "push_line only: {lines} lines {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

#[allow(dead_code)]
fn unused() {}

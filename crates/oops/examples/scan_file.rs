//! Throughput check: `cargo run --release -p kmortem-oops --example scan_file -- FILE` (the
//! feed path and its JSON; `PUSH_LINE=1` times the line-by-line path too). Under callgrind it
//! gives instruction counts that the machine's load does not blur.
fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    if std::env::var_os("LIKE_CLI").is_some() {
        // As `kmortem oops --json` does it: 1 MB reads, each batch serialised as it comes.
        use std::io::{Read, Write};
        let mut f = std::fs::File::open(&path).expect("open");
        let mut out = std::io::BufWriter::new(std::io::sink());
        let mut s = kmortem_oops::Scanner::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        let t = std::time::Instant::now();
        loop {
            let k = f.read(&mut buf).expect("read");
            let batch = if k == 0 {
                std::mem::take(&mut s).finish()
            } else {
                s.feed(&buf[..k])
            };
            let mut json = Vec::new();
            for r in &batch {
                n += 1;
                json.clear();
                r.write_json_pretty(&mut json);
                out.write_all(&json).unwrap();
            }
            if k == 0 {
                break;
            }
        }
        out.flush().unwrap();
        println!("{n} reports, {:.2} s", t.elapsed().as_secs_f64());
        return;
    }
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
    println!("json (serde_json): {:.2} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut json = Vec::new();
    for r in &reports {
        json.clear();
        r.write_json_pretty(&mut json);
        std::io::Write::write_all(&mut out, &json).unwrap();
    }
    println!(
        "json (write_json_pretty): {:.2} s",
        t.elapsed().as_secs_f64()
    );
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

//! Throughput check: `cargo run --release -p kmortem-oops --example scan_file -- FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let data = std::fs::read(&path).expect("read");
    let t0 = std::time::Instant::now();
    kmortem_oops::parse(b"BUG: warm up the tables\n");
    println!("init {:.2} s", t0.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut s = kmortem_oops::Scanner::new();
    let mut n = 0;
    for chunk in data.chunks(1 << 20) {
        n += s.feed(chunk).len();
    }
    n += s.finish().len();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{n} reports, {:.2} s, {:.0} MB/s",
        dt,
        data.len() as f64 / 1048576.0 / dt
    );
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

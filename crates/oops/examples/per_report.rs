//! Cost per report: `cargo run --release -p kmortem-oops --example per_report -- FILE...`.
fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).expect("read");
        kmortem_oops::parse(&data);
        let t = std::time::Instant::now();
        for _ in 0..20 {
            kmortem_oops::parse(&data);
        }
        println!(
            "{path}: {:.2} ms per parse",
            t.elapsed().as_secs_f64() * 1000.0 / 20.0
        );
    }
}

//! Print kmortem-oops' title and kind for console logs: `cargo run -p kmortem-lab --example
//! lab_titles -- FILE...` (handy when adding a lab scenario).

fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let reports = kmortem_oops::parse(&bytes);
                if reports.is_empty() {
                    println!("{path}: no report");
                }
                for r in reports {
                    println!("{path}: {} ({})", r.title, r.kind.as_str());
                }
            }
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}

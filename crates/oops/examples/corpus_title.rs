//! Debug helper: print what the parser makes of syzkaller corpus files (headers stripped).
//! `cargo run -p kmortem-oops --example corpus_title -- ../shared/corpus/syzkaller/report/44`
fn main() {
    for path in std::env::args().skip(1) {
        let raw: Vec<u8> = std::fs::read(&path)
            .unwrap_or_default()
            .into_iter()
            .filter(|&b| b != b'\r')
            .collect();
        let start = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(0, |p| p + 2);
        let mut log = raw[start..].to_vec();
        if let Some(p) = log.windows(10).position(|w| w == b"\n\nREPORT:\n") {
            log.truncate(p + 1);
        }
        for r in kmortem_oops::parse(&log) {
            println!(
                "{path}: {:?} corrupted={:?} frame={:?} lines {}-{} alts={:?} type={}",
                r.title,
                r.corrupted_reason,
                r.guilty_frame,
                r.start_line,
                r.end_line,
                r.alt_titles,
                r.crash_type
            );
        }
    }
}

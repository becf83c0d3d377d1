//! Titles of reports kmortem was not developed on: the 195 syzbot crash reports of
//! `../shared/data/syzbot-fixes-dev/` (as syzbot mailed them: already symbolised, first report
//! first), against the title syzbot gave the bug (`dev.tsv`, without its ` (N)` sequel
//! suffix). syzbot titled the raw console log, and some bugs were retitled later, so this is a
//! floor, not parity: printed, bar 90%.

use std::path::PathBuf;

#[test]
fn syzbot_mailed_report_titles() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/syzbot-fixes-dev"
    ));
    let tsv = std::fs::read_to_string(dir.join("dev.tsv")).unwrap_or_else(|e| {
        panic!(
            "the shared syzbot data is missing: expected {}/dev.tsv ({e})",
            dir.display()
        )
    });
    let (mut n, mut ok) = (0, 0);
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (Some(file), Some(want)) = (cols.first(), cols.get(1)) else {
            continue;
        };
        // `general protection fault in tcf_action_destroy (2)`: the second bug of that title.
        let want = match want.rsplit_once(" (") {
            Some((t, n)) if n.trim_end_matches(')').bytes().all(|b| b.is_ascii_digit()) => t,
            _ => want,
        };
        let log = std::fs::read(dir.join(file)).unwrap();
        n += 1;
        let got = kmortem_oops::parse(&log)
            .into_iter()
            .find(|r| !r.kind.is_event())
            .map(|r| r.title);
        if got.as_deref() == Some(want) {
            ok += 1;
        } else {
            println!("MAILED MISMATCH {file}: syzbot {want:?}, kmortem {got:?}");
        }
    }
    let pct = 100.0 * ok as f64 / n.max(1) as f64;
    println!("syzbot mailed reports: {ok}/{n} = {pct:.1}% titles agree (bar 90%)");
    assert!(
        n > 100 && pct >= 90.0,
        "title agreement {pct:.1}% below 90%"
    );
}

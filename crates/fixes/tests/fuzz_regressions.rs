//! What the fixes_crash_text fuzz target found, replayed through `kmortem fixes`' own entry
//! point. The finding was a mutated corpus report; its essence is kept here instead of the
//! file: a multi-byte character where a console caller id's letter stands (`[    \u{fffd}C0]` after the stamp)
//! panicked the prefix parser (`kmortem_oops::line::prefix`).

#[test]
fn multibyte_caller_id_is_no_panic() {
    let text = "[   76.428565][    C0] BUG: sleeping function called from invalid context\n\
                [   76.459867][    \u{fffd}C0]  ? add_timer+0x990/0x990\n";
    let q = kmortem_fixes::CrashQuery::light(text);
    let _ = q.key_frames();
    let _ = kmortem_fixes::CrashQuery::from_text(text);
    println!("fixes_crash_text: a caller id starting with U+FFFD: no panic");
}

#![no_main]
//! CVE 5.x JSON records (plus a .sha1 and .dyad made of the same bytes).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = kmortem_fixes::record::cve_record(data, Some(&text), Some(&text), false);
    let _ = kmortem_fixes::record::cve_record(data, None, None, true);
    // Also as a description inside a well-formed record.
    let doc = serde_json_string(&text);
    let rec = format!(
        r#"{{"cveMetadata":{{"cveId":"CVE-0-0"}},"containers":{{"cna":{{"descriptions":[{{"lang":"en","value":{doc}}}]}}}}}}"#
    );
    let _ = kmortem_fixes::record::cve_record(rec.as_bytes(), None, None, false);
});

fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

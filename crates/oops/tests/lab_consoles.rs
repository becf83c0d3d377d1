//! The crash lab's real console logs (`~/.cache/kmortem/lab/<release>/scenarios/*/console.log`),
//! when the lab has been built on this machine. Every console holds at most one crash, the panic
//! that follows an oops belongs to its report, and the title agreement with the lab's expected
//! title is printed.

fn lab_consoles() -> Vec<std::path::PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return vec![];
    };
    let root = std::path::Path::new(&home).join(".cache/kmortem/lab");
    let mut out = Vec::new();
    for rel in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for sc in std::fs::read_dir(rel.path().join("scenarios"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let c = sc.path().join("console.log");
            if c.is_file() {
                out.push(c);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn lab_console_logs() {
    let consoles = lab_consoles();
    if consoles.is_empty() {
        println!("no crash-lab console logs under ~/.cache/kmortem/lab: nothing to check");
        return;
    }
    let (mut agree, mut with_expect) = (0, 0);
    for c in &consoles {
        let log = std::fs::read(c).unwrap();
        let reports: Vec<_> = kmortem_oops::parse(&log)
            .into_iter()
            .filter(|r| !r.kind.is_event())
            .collect();
        assert!(
            reports.len() <= 1,
            "{}: {:#?}",
            c.display(),
            reports.iter().map(|r| &r.title).collect::<Vec<_>>()
        );
        let text = String::from_utf8_lossy(&log);
        if let Some(r) = reports.first() {
            if text.contains("---[ end trace") && text.contains("Kernel panic - not syncing") {
                assert!(
                    r.panic_message.is_some(),
                    "{}: the panic was not attached to {:?}",
                    c.display(),
                    r.title
                );
            }
        }
        let meta = c.with_file_name("meta.json");
        let expected = std::fs::read_to_string(&meta).ok().and_then(|m| {
            let k = "\"expected_title\": \"";
            let p = m.find(k)? + k.len();
            Some(m[p..].split('"').next()?.to_string())
        });
        let got = reports.first().map(|r| r.title.clone());
        if let Some(e) = &expected {
            with_expect += 1;
            if got.as_deref() == Some(e.as_str()) {
                agree += 1;
            }
        }
        println!("{}: got {:?}, lab expects {:?}", c.display(), got, expected);
    }
    println!(
        "lab consoles: {} files, title agrees with the lab's expectation on {agree}/{with_expect}",
        consoles.len()
    );
}

//! Issue 18: the analysis-only build (`--no-default-features --features analysis`) links no
//! database driver (sqlx), no search engine (tantivy) and no git (gix). Asked of `cargo tree`
//! (offline, from Cargo.lock), for the normal dependencies of the kmortem binary.

use std::process::Command;

/// The crates that must stay out of the analysis-only build (matched as `grep -E` would).
const HEAVY: [&str; 3] = ["sqlx", "tantivy", "gix"];

/// The package names of `cargo tree -p kmortem -e normal` with these feature arguments.
fn tree(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "kmortem",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(features)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree {features:?}: {err}");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn heavy(names: &[String]) -> Vec<&String> {
    names
        .iter()
        .filter(|n| HEAVY.iter().any(|h| n.contains(h)))
        .collect()
}

#[test]
fn analysis_build_links_no_sqlx_tantivy_or_gix() {
    let names = tree(&["--no-default-features", "--features", "analysis"]);
    println!("analysis-only: {} crates", names.len());
    assert_eq!(heavy(&names), Vec::<&String>::new());
    // The tree is the binary's: its analysis crates are in it.
    for c in [
        "kmortem",
        "kmortem-oops",
        "kmortem-kernel",
        "kmortem-explain",
    ] {
        assert!(names.iter().any(|n| n == c), "{c} not in {names:?}");
    }
    for c in ["kmortem-fixes", "kmortem-server", "kmortem-store", "tokio"] {
        assert!(!names.iter().any(|n| n == c), "{c} in the analysis build");
    }
}

#[test]
fn each_feature_brings_its_own_heavy_crates() {
    let full = tree(&[]);
    let fixes = tree(&["--no-default-features", "--features", "fixes"]);
    let server = tree(&["--no-default-features", "--features", "server"]);
    let count = |names: &[String], h: &str| names.iter().filter(|n| n.contains(h)).count();
    for (set, names) in [("default", &full), ("fixes", &fixes), ("server", &server)] {
        println!(
            "{set}: {} crates, {} sqlx*, {} tantivy*, {} gix*",
            names.len(),
            count(names, "sqlx"),
            count(names, "tantivy"),
            count(names, "gix")
        );
    }
    // The default keeps everything (so the check above can fail).
    for h in HEAVY {
        assert!(count(&full, h) > 0, "no {h} in the default build");
    }
    // `fixes`: the tantivy index, without git history or a database.
    assert!(count(&fixes, "tantivy") > 0);
    assert_eq!((count(&fixes, "gix"), count(&fixes, "sqlx")), (0, 0));
    // `server`: the store's sqlx, without the fix index.
    assert!(count(&server, "sqlx") > 0);
    assert_eq!((count(&server, "gix"), count(&server, "tantivy")), (0, 0));
}

/// A command whose feature is off is one line naming the feature, exit 2, whatever its
/// arguments (`--help` too). Runs in a build without those features only.
#[test]
#[cfg(not(all(feature = "server", feature = "fixes-git")))]
fn commands_left_out_name_their_feature() {
    let home = std::env::temp_dir().join(format!("kmortem-features-{}", std::process::id()));
    let home = home.display().to_string();
    let mut cases: Vec<(Vec<&str>, &str, &str)> = Vec::new();
    if cfg!(not(feature = "server")) {
        cases.push((vec!["serve", "--listen", "127.0.0.1:0"], "serve", "server"));
        cases.push((vec!["agent", "--help"], "agent", "server"));
        cases.push((vec!["doctor"], "doctor", "server"));
    }
    if cfg!(not(feature = "fixes")) {
        cases.push((vec!["fixes", "crash.log", "--json"], "fixes", "fixes"));
    } else if cfg!(not(feature = "fixes-git")) {
        let args = vec!["fixes", "import", "--git", ".", "--home", &home];
        cases.push((args, "fixes import --git", "fixes-git"));
    }
    assert!(!cases.is_empty());
    for (args, cmd, feature) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_kmortem"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{args:?}: {err}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            err.starts_with(&format!("kmortem: `kmortem {cmd}` is not in this build")),
            "{args:?}: {err}"
        );
        assert!(err.contains(&format!("cargo feature `{feature}`")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Refused before anything was written.
    assert!(!std::path::Path::new(&home).exists());
}

//! The kmortem crash lab, seen from Rust tests and benches.
//!
//! `lab/build` (in the repository root) boots Debian's cloud kernel in QEMU, crashes it with our
//! `kmlab` module, and keeps everything under `~/.cache/kmortem/lab/<kernel-release>/`: the
//! kernel's debug info, each scenario's console log, vmcores in several formats, and what
//! `crash`, drgn and `addr2line` say about them (see `lab/README.md`). This crate finds that
//! directory, builds it when it is missing (printing the build's progress), and reads each
//! scenario's `meta.json`.
//!
//! ```no_run
//! let lab = kmortem_lab::Lab::get().expect("crash lab");
//! for sc in lab.scenarios().unwrap() {
//!     println!("{} {:?}", sc.meta.name, sc.meta.expected_title);
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

/// Errors finding, building or reading the lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find the home directory (HOME is not set)")]
    NoHome,
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed with {status}")]
    Build {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the lab at {0} has no scenarios; run lab/build")]
    Empty(PathBuf),
}

/// One dump file of a scenario.
#[derive(Debug, Clone, Deserialize)]
pub struct Dump {
    /// File name inside the scenario directory (`vmcore.kdump-zlib`).
    pub file: String,
    /// `elf`, `kdump-zlib`, `kdump-lzo`, `kdump-d31`, `flat`, `kdump-zlib.qemu-flat`.
    pub format: String,
    /// `elf`, `kdump-compressed` or `flattened`.
    pub container: String,
    /// Page compression (`zlib`, `lzo`), `None` for ELF.
    pub compression: Option<String>,
    /// makedumpfile's dump level (`-d`): 0 keeps every page, 31 drops free, zero, cache and
    /// user pages.
    pub dump_level: u32,
    /// The command that made the file.
    pub made_by: String,
    pub bytes: u64,
}

/// Variant flags of a scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Variant {
    pub nokaslr: bool,
    pub la57: bool,
    pub no_vmcoreinfo: bool,
    pub live: bool,
    pub limp_on: bool,
    /// Dumped by a real kdump (kexec'd capture kernel), not by QEMU.
    pub kdump: bool,
}

/// A scenario's `meta.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Meta {
    pub name: String,
    /// What was written to `/proc/kmlab`.
    pub trigger: String,
    /// kmortem-oops' `Kind` in snake_case; `None` for the live (not crashed) guest.
    pub kind: Option<String>,
    /// The syzkaller-style title the report must get; `None` for the live guest.
    pub expected_title: Option<String>,
    /// The function the title names (where the bug is reported).
    pub panic_function: Option<String>,
    pub kernel_release: String,
    pub kernel_version: Option<String>,
    pub vmlinux: PathBuf,
    pub modules_debug_dir: PathBuf,
    pub kmlab_ko: PathBuf,
    pub kmlab_source: PathBuf,
    pub system_map: PathBuf,
    pub cmdline: String,
    pub kaslr: bool,
    /// `0x...` from the dump's VMCOREINFO `KERNELOFFSET` (or the console's `Kernel Offset:`).
    pub kaslr_offset: Option<String>,
    pub vmcoreinfo_in_dump: bool,
    pub variant: Variant,
    pub dumps: Vec<Dump>,
    /// CPU, PID and comm of the CPU line nearest before `Kernel panic - not syncing`.
    pub panic_cpu: Option<u32>,
    pub panic_pid: Option<u32>,
    pub panic_comm: Option<String>,
    /// CPU, PID and comm of the first report's CPU line.
    pub oops_cpu: Option<u32>,
    pub oops_pid: Option<u32>,
    pub oops_comm: Option<String>,
    /// The function of the first `RIP:` line, as printed.
    pub rip_function: Option<String>,
    pub panic_message: Option<String>,
}

impl Meta {
    /// The KASLR offset as a number (0 when KASLR is off or unknown).
    pub fn kaslr_offset_value(&self) -> u64 {
        self.kaslr_offset
            .as_deref()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0)
    }
}

/// One scenario directory.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub dir: PathBuf,
    pub meta: Meta,
}

impl Scenario {
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// A file of `oracle/` (`crash-bt.txt`, `drgn-bt.txt`, `addr2line.txt`, `timings.json`).
    pub fn oracle(&self, file: &str) -> PathBuf {
        self.dir.join("oracle").join(file)
    }
    /// The dump of the given format (`elf`, `kdump-zlib`, ...), if this scenario keeps it.
    pub fn dump(&self, format: &str) -> Option<PathBuf> {
        self.meta
            .dumps
            .iter()
            .find(|d| d.format == format)
            .map(|d| self.dir.join(&d.file))
    }
}

/// The lab directory of one kernel release.
#[derive(Debug, Clone)]
pub struct Lab {
    pub dir: PathBuf,
}

/// The repository root (this crate lives in `crates/lab`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Lab {
    /// The lab, built if needed, once per process. Runs `lab/build`, which prints its progress
    /// and takes seconds when everything is already in the cache. `KMORTEM_LAB_DIR` points at
    /// a lab directory instead (no build).
    pub fn get() -> Result<&'static Lab, &'static Error> {
        static LAB: OnceLock<Result<Lab, Error>> = OnceLock::new();
        LAB.get_or_init(Lab::find_or_build).as_ref()
    }

    fn find_or_build() -> Result<Lab, Error> {
        if let Some(dir) = std::env::var_os("KMORTEM_LAB_DIR") {
            return Ok(Lab { dir: dir.into() });
        }
        let build = repo_root().join("lab/build");
        let command = build.display().to_string();
        eprintln!("kmortem-lab: running {command} (builds the crash lab if it is missing)");
        let status = Command::new(&build)
            // progress goes to the test's stderr
            .stdout(std::process::Stdio::inherit())
            .status()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        if !status.success() {
            return Err(Error::Build { command, status });
        }
        let out = Command::new(&build)
            .arg("--print-dir")
            .output()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Build {
                command: format!("{command} --print-dir"),
                status: out.status,
            });
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Lab { dir: dir.into() })
    }

    /// The lab of `release` in the default cache, without building it.
    pub fn at_release(release: &str) -> Result<Lab, Error> {
        let home = std::env::var_os("HOME").ok_or(Error::NoHome)?;
        let cache = std::env::var_os("KMORTEM_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(home).join(".cache/kmortem"));
        Ok(Lab {
            dir: cache.join("lab").join(release),
        })
    }

    /// Every scenario with a `meta.json`, sorted by name.
    pub fn scenarios(&self) -> Result<Vec<Scenario>, Error> {
        let sdir = self.dir.join("scenarios");
        let entries = std::fs::read_dir(&sdir).map_err(|source| Error::Io {
            path: sdir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|source| Error::Io {
                path: sdir.clone(),
                source,
            })?;
            let meta_path = e.path().join("meta.json");
            if !meta_path.exists() {
                continue;
            }
            out.push(Scenario {
                dir: e.path(),
                meta: read_meta(&meta_path)?,
            });
        }
        if out.is_empty() {
            return Err(Error::Empty(self.dir.clone()));
        }
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        Ok(out)
    }

    /// One scenario by name.
    pub fn scenario(&self, name: &str) -> Result<Scenario, Error> {
        let dir = self.dir.join("scenarios").join(name);
        let meta = read_meta(&dir.join("meta.json"))?;
        Ok(Scenario { dir, meta })
    }

    /// `root/`: the extracted Debian packages.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
}

fn read_meta(path: &Path) -> Result<Meta, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_parses_and_offset_is_hex() {
        let json = r#"{"name":"x","trigger":"x","kind":"kernel_bug","expected_title":"kernel BUG in f",
          "panic_function":"f","kernel_release":"r","kernel_version":"v","vmlinux":"/v",
          "modules_debug_dir":"/m","kmlab_ko":"/k","kmlab_source":"/s","system_map":"/s",
          "cmdline":"c","kaslr":true,"kaslr_offset":"0x2b800000","vmcoreinfo_in_dump":true,
          "variant":{"nokaslr":false,"la57":false,"no_vmcoreinfo":false,"live":false,"limp_on":false},
          "dumps":[],"panic_cpu":0,"panic_pid":1,"panic_comm":"sh"}"#;
        let m: Meta = serde_json::from_str(json).unwrap();
        assert_eq!(m.kaslr_offset_value(), 0x2b80_0000);
        assert_eq!(m.panic_comm.as_deref(), Some("sh"));
        assert!(m.oops_cpu.is_none());
    }
}

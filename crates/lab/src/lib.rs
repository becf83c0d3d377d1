//! The kmortem crash lab, seen from Rust tests and benches.
//!
//! `lab/build` (in the repository root) boots each kernel pinned in `lab/kernels.toml` (Debian's
//! 6.1 and its 6.12 backport) in QEMU, crashes it with our `kmlab` module, and keeps everything
//! under `~/.cache/kmortem/lab/<kernel-release>/`: the kernel's debug info, each scenario's
//! console log, vmcores in several formats, and what `crash`, drgn and `addr2line` say about
//! them (see `lab/README.md`). This crate reads the pinned kernels, finds their directories,
//! builds them when they are missing (printing the build's progress), and reads each scenario's
//! `meta.json`.
//!
//! It is the one source of truth for releases and paths: no test, bench or script names a
//! release. Lab tests run on every kernel with [`each`], which names the kernel in a failure:
//!
//! ```no_run
//! kmortem_lab::each(|lab| {
//!     for sc in lab.scenarios().unwrap() {
//!         println!("[{}] {} {:?}", lab.name(), sc.meta.name, sc.meta.expected_title);
//!     }
//! });
//! ```
//!
//! It must not know anything about kmortem's own crates: it only finds files.

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
    #[error("{path}: {message}")]
    Kernels { path: PathBuf, message: String },
    #[error(
        "the crash lab's scenario `{scenario}` of kernel {kernel} is missing at {dir}: build it \
         with `lab/build --kernel {kernel} --only {scenario}`"
    )]
    MissingScenario {
        scenario: String,
        kernel: String,
        dir: PathBuf,
    },
}

/// One kernel pinned in `lab/kernels.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Kernel {
    /// The short name (`6.1`, `6.12`): `lab/build --kernel NAME`, and the label of test output.
    pub name: String,
    /// `uname -r`.
    pub release: String,
    /// The Debian version of every pinned package.
    pub version: String,
    pub packages: Vec<String>,
    /// The meta-package whose Depends names the newest ABI.
    pub meta: String,
    /// Which reference tools read this kernel's dumps (`crash`, `drgn`, `addr2line`).
    pub oracles: Vec<String>,
    pub why: String,
}

#[derive(Deserialize)]
struct KernelsToml {
    kernel: Vec<Kernel>,
}

/// `lab/kernels.toml`.
pub fn kernels_toml() -> PathBuf {
    repo_root().join("lab/kernels.toml")
}

/// The pinned kernels, in file order, limited to the names in `KMORTEM_LAB_KERNELS`
/// (comma-separated) when it is set, as `lab/build` limits itself.
pub fn kernels() -> Result<Vec<Kernel>, Error> {
    let path = kernels_toml();
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let all: KernelsToml = toml::from_str(&text).map_err(|e| Error::Kernels {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let Ok(sel) = std::env::var("KMORTEM_LAB_KERNELS") else {
        return Ok(all.kernel);
    };
    let names: Vec<&str> = sel
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = names
        .iter()
        .find(|n| !all.kernel.iter().any(|k| k.name == **n))
    {
        return Err(Error::Kernels {
            path,
            message: format!("KMORTEM_LAB_KERNELS names {bad:?}, which is not a pinned kernel"),
        });
    }
    Ok(all
        .kernel
        .into_iter()
        .filter(|k| names.contains(&k.name.as_str()))
        .collect())
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
    /// The kernel's name in `lab/kernels.toml` (`6.1`, `6.12`).
    #[serde(default)]
    pub kernel_name: Option<String>,
    /// What the oracles were run on.
    #[serde(default)]
    pub oracles: Option<Oracles>,
    /// The optimisation level `kmlab_ko` was built at: `-O2` (the kernel's own, every base
    /// scenario), `-O1` or `-Os` (the `_O1`/`_Os` variants). `None` in labs built before it.
    #[serde(default)]
    pub opt: Option<String>,
    /// How many reports the console holds: 1, or more when benign ones (a WARNING) come before
    /// the crash; the fatal one is always the one `expected_title` names.
    #[serde(default = "one")]
    pub expected_reports: usize,
}

fn one() -> usize {
    1
}

/// `meta.json`'s `oracles`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Oracles {
    /// The dump the unsuffixed oracle files (`crash-bt.txt`, `drgn-bt.txt`) were made from;
    /// the others carry the format (`drgn-bt.kdump-lzo.txt`).
    pub primary_dump: Option<String>,
    pub files: Vec<String>,
}

impl Meta {
    /// The scenario this one is a variant of at another optimisation level (`uaf` for
    /// `uaf_O1`), or its own name.
    pub fn base_name(&self) -> &str {
        match self.opt.as_deref() {
            Some(o) if o != "-O2" => self
                .name
                .strip_suffix(&format!("_{}", o.trim_start_matches('-')))
                .unwrap_or(&self.name),
            _ => &self.name,
        }
    }

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
    /// The dump the unsuffixed oracle outputs describe.
    pub fn primary_dump(&self) -> Option<PathBuf> {
        let o = self.meta.oracles.as_ref()?;
        Some(self.dir.join(o.primary_dump.as_deref()?))
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

/// The lab of one kernel: its directory and its pinned kernel.
#[derive(Debug, Clone)]
pub struct Lab {
    pub dir: PathBuf,
    pub kernel: Kernel,
}

/// The repository root (this crate lives in `crates/lab`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cache that holds every kernel's lab (`KMORTEM_CACHE`, else `~/.cache/kmortem`), as
/// `lab/lab.py` computes it.
fn cache_dir() -> Result<PathBuf, Error> {
    if let Some(c) = std::env::var_os("KMORTEM_CACHE") {
        return Ok(c.into());
    }
    let home = std::env::var_os("HOME").ok_or(Error::NoHome)?;
    Ok(PathBuf::from(home).join(".cache/kmortem"))
}

impl Lab {
    /// Every pinned kernel's lab, built if needed, once per process: runs `lab/build`, which
    /// prints its progress and takes seconds when everything is already in the cache.
    /// `KMORTEM_LAB_DIR` points at one lab directory instead (no build; its `kernel.json` says
    /// which kernel it is), `KMORTEM_LAB_NO_BUILD=1` takes the cached labs as they are, and
    /// `KMORTEM_LAB_KERNELS` limits the kernels.
    pub fn all() -> Result<&'static [Lab], &'static Error> {
        static LABS: OnceLock<Result<Vec<Lab>, Error>> = OnceLock::new();
        LABS.get_or_init(Lab::find_or_build)
            .as_ref()
            .map(Vec::as_slice)
    }

    /// The first pinned kernel's lab (for benches and tools that want one; tests use [`each`]).
    pub fn get() -> Result<&'static Lab, &'static Error> {
        static EMPTY: OnceLock<Error> = OnceLock::new();
        match Lab::all()?.first() {
            Some(l) => Ok(l),
            None => Err(EMPTY.get_or_init(|| Error::Kernels {
                path: kernels_toml(),
                message: "no kernel selected".into(),
            })),
        }
    }

    fn find_or_build() -> Result<Vec<Lab>, Error> {
        if let Some(dir) = std::env::var_os("KMORTEM_LAB_DIR") {
            return Ok(vec![Lab::at_dir(dir.into())?]);
        }
        if std::env::var_os("KMORTEM_LAB_NO_BUILD").is_some() {
            // Developing while another lab/build runs: take what is in the cache.
            return Lab::cached();
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
        Lab::cached()
    }

    /// Every selected kernel's lab in the cache, without building anything.
    pub fn cached() -> Result<Vec<Lab>, Error> {
        let cache = cache_dir()?;
        Ok(kernels()?
            .into_iter()
            .map(|kernel| Lab {
                dir: cache.join("lab").join(&kernel.release),
                kernel,
            })
            .collect())
    }

    /// A lab directory given by path: its `kernel.json` (written by `lab/build`) names the
    /// kernel, which must be one of `lab/kernels.toml`.
    pub fn at_dir(dir: PathBuf) -> Result<Lab, Error> {
        let kj = dir.join("kernel.json");
        let bytes = std::fs::read(&kj).map_err(|source| Error::Io {
            path: kj.clone(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: kj.clone(),
                source,
            })?;
        let release = v["kernel_release"].as_str().unwrap_or_default();
        let all: KernelsToml =
            toml::from_str(&std::fs::read_to_string(kernels_toml()).map_err(|source| {
                Error::Io {
                    path: kernels_toml(),
                    source,
                }
            })?)
            .map_err(|e| Error::Kernels {
                path: kernels_toml(),
                message: e.to_string(),
            })?;
        let kernel = all
            .kernel
            .into_iter()
            .find(|k| k.release == release)
            .ok_or_else(|| Error::Kernels {
                path: kj,
                message: format!("kernel {release:?} is not pinned in lab/kernels.toml"),
            })?;
        Ok(Lab { dir, kernel })
    }

    /// The kernel's short name (`6.1`, `6.12`).
    pub fn name(&self) -> &str {
        &self.kernel.name
    }

    /// `uname -r` of the kernel.
    pub fn release(&self) -> &str {
        &self.kernel.release
    }

    /// Whether `tool` (`crash`, `drgn`, `addr2line`) reads this kernel's dumps, so that its
    /// outputs are in each scenario's `oracle/`.
    pub fn has_oracle(&self, tool: &str) -> bool {
        self.kernel.oracles.iter().any(|o| o == tool)
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

    /// One scenario by name; a missing one is an error that says how to build it.
    pub fn scenario(&self, name: &str) -> Result<Scenario, Error> {
        let dir = self.dir.join("scenarios").join(name);
        if !dir.join("meta.json").is_file() {
            return Err(Error::MissingScenario {
                scenario: name.into(),
                kernel: self.name().into(),
                dir,
            });
        }
        let meta = read_meta(&dir.join("meta.json"))?;
        Ok(Scenario { dir, meta })
    }

    /// [`Lab::scenario`], panicking with its message (for tests).
    pub fn need(&self, name: &str) -> Scenario {
        self.scenario(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `root/`: the extracted Debian packages.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The kernel's vmlinux with DWARF (from the `-dbg` package).
    pub fn vmlinux(&self) -> PathBuf {
        self.root()
            .join("usr/lib/debug/boot")
            .join(format!("vmlinux-{}", self.release()))
    }

    /// `/boot/vmlinuz-<release>` of the image package.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root()
            .join("boot")
            .join(format!("vmlinuz-{}", self.release()))
    }

    /// `System.map-<release>`.
    pub fn system_map(&self) -> PathBuf {
        self.root()
            .join("boot")
            .join(format!("System.map-{}", self.release()))
    }

    /// The modules' debug files (`.ko` with DWARF), as `-dbg` installs them.
    pub fn modules_debug_dir(&self) -> PathBuf {
        self.root()
            .join("usr/lib/debug/lib/modules")
            .join(self.release())
    }

    /// The kernel's own modules as the image package installs them (`.ko` on 6.1, `.ko.xz`
    /// on 6.12).
    pub fn modules_dir(&self) -> PathBuf {
        self.root().join("lib/modules").join(self.release())
    }

    /// The newest build of the lab's `kmlab.ko` (each scenario's `meta.kmlab_ko` names the one
    /// its dumps were made with).
    pub fn kmlab_ko(&self) -> PathBuf {
        self.dir.join("module/kmlab.ko")
    }
}

/// Runs `f` on every pinned kernel's lab (built first if missing), each in turn, and fails
/// once at the end, naming every kernel whose run panicked, so a failure on 6.12 does not hide
/// the result on 6.1. Test output is labelled with `== kernel NAME (RELEASE)` lines.
pub fn each(f: impl Fn(&Lab)) {
    let labs = Lab::all().unwrap_or_else(|e| panic!("crash lab unavailable: {e}"));
    assert!(!labs.is_empty(), "no lab kernel selected");
    let mut failed = Vec::new();
    for lab in labs {
        println!("== kernel {} ({})", lab.name(), lab.release());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(lab)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("== kernel {} FAILED", lab.name());
            failed.push(format!("kernel {} ({}): {msg}", lab.name(), lab.release()));
        }
    }
    assert!(failed.is_empty(), "failed on {}", failed.join("\n\n"));
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

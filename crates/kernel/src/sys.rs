//! `sys`: what crash prints at start-up, from VMCOREINFO and the dump (and the vmlinux when
//! there is one).

use crate::mem::Memory;
use crate::printk::LogRecord;
use crate::program::Program;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SysInfo {
    pub dumpfile: String,
    pub format: String,
    pub kernel: Option<String>,
    pub release: Option<String>,
    pub version: Option<String>,
    pub machine: Option<String>,
    pub nodename: Option<String>,
    pub cpus: u32,
    /// Present CPUs that were offline at dump time (stopped by the panic).
    pub offline_cpus: Vec<u32>,
    /// Bytes of RAM in the dump's memory map.
    pub memory: u64,
    /// Seconds since boot: jiffies (crash's UPTIME), else the timekeeper, else the last log
    /// timestamp.
    pub uptime_secs: Option<u64>,
    /// Seconds since the epoch when the dump was taken.
    pub crash_time: Option<i64>,
    pub panic: Option<String>,
    pub tasks: Option<usize>,
    pub kaslr_offset: String,
    pub vmcoreinfo: String,
}

/// The panic message, found in the log the way crash's `get_panicmsg()` does: first an
/// exception line (general protection fault, double fault, divide error, stack segment), then
/// a SysRq crash, then an oops line ("Oops: ", "kernel BUG at", "BUG: unable to handle kernel
/// "), then "Kernel panic - ". The whole record text is the message. Pinned by the lab's
/// `sys` oracle.
pub fn panic_message(log: &[LogRecord]) -> Option<String> {
    let tiers: &[&[&str]] = &[
        &[
            "general protection fault: ",
            "double fault: ",
            "divide error: ",
            "stack segment: ",
        ],
        &[
            "SysRq : Netdump",
            "SysRq : Crash",
            "SysRq : Trigger a crash",
        ],
        &[
            "Oops: ",
            "Kernel BUG at",
            "kernel BUG at",
            "Unable to handle kernel paging request",
            "Unable to handle kernel NULL pointer dereference",
            "BUG: unable to handle kernel ",
        ],
        &["Kernel panic: ", "Kernel panic - "],
        &["[Hardware Error]: "],
        &["Bad mode in "],
    ];
    for tier in tiers {
        for r in log {
            for line in r.text.split('\n') {
                if tier.iter().any(|p| line.contains(p)) {
                    return Some(line.trim_end().to_string());
                }
            }
        }
    }
    None
}

impl Program {
    /// utsname fields (sysname, nodename, release, version, machine) from `init_uts_ns`.
    pub fn utsname(&self) -> Option<[String; 5]> {
        let ns = self.symbol("init_uts_ns")?;
        // OFFSET(uts_namespace.name) is in VMCOREINFO since 5.x; else the types; else probe
        // for the "Linux" sysname in the first words (kref/ns_common came first in old kernels).
        let off = self.offset_of("uts_namespace", "name").ok().or_else(|| {
            let b = self.read_vec(ns, 64).ok()?;
            (0..64 - 6)
                .step_by(4)
                .find(|&o| &b[o..o + 6] == b"Linux\0")
                .map(|o| o as u64)
        })?;
        let b = self.read_vec(ns + off, 65 * 5).ok()?;
        let f = |i: usize| {
            let s = &b[i * 65..(i + 1) * 65];
            let e = s.iter().position(|&c| c == 0).unwrap_or(65);
            String::from_utf8_lossy(&s[..e]).into_owned()
        };
        Some([f(0), f(1), f(2), f(3), f(4)])
    }

    /// Offset of `timekeeper` in the anonymous `tk_core` struct.
    ///
    /// Folklore: kernel/time/timekeeping.c has `static struct { seqcount_raw_spinlock_t seq;
    /// struct timekeeper timekeeper; } tk_core ____cacheline_aligned;` (since 3.17): the type
    /// has no name to look up, so the offset is the seqcount's size rounded up to the
    /// timekeeper's 8-byte alignment. Pinned by the lab's `sys` DATE oracle.
    fn tk_offset(&self) -> Option<u64> {
        let t = self.types().ok()?;
        let seq = [
            "seqcount_raw_spinlock_t",
            "seqcount_raw_spinlock",
            "seqcount_t",
        ]
        .iter()
        .find_map(|n| t.find_struct(n))?;
        Some(t.size_of(seq).div_ceil(8) * 8)
    }

    /// Seconds since boot from `jiffies_64`, as crash computes its UPTIME.
    ///
    /// Folklore: jiffies start at INITIAL_JIFFIES, `(unsigned long)(unsigned int)(-300*HZ)`
    /// (since 2.5.x: they wrap 5 minutes after boot, to catch overflow bugs), so the uptime is
    /// `(jiffies_64 - INITIAL_JIFFIES) / HZ`. HZ (CONFIG_HZ) is a #define, in no BTF, DWARF or
    /// VMCOREINFO: it comes from `tick_nsec`, the tick length in ns (TICK_NSEC, about 10^9 /
    /// HZ; NTP moves it by at most 500 ppm). The timekeeper's monotonic time
    /// ([`Program::timekeeper_uptime`]) lags jiffies by up to a second on the lab's QEMU guests
    /// (crash prints jiffies' figure); both are updated by the tick, while printk timestamps come
    /// from each CPU's sched_clock and can run ahead of them (a CPU spinning with interrupts off
    /// in QEMU: `irqs_off_stall`). Pinned by the lab's `sys` UPTIME oracle (crash, 6.1) and the
    /// jiffies-vs-timekeeper check (every kernel).
    pub fn jiffies_uptime(&self) -> Option<u64> {
        let j = self.read_u64(self.symbol("jiffies_64")?).ok()?;
        let tick = self.read_u64(self.symbol("tick_nsec")?).ok()?;
        if !(100_000..=100_000_000).contains(&tick) {
            return None;
        }
        let hz = (1_000_000_000 + tick / 2) / tick;
        let initial = (300 * hz).wrapping_neg() as u32 as u64;
        Some(j.wrapping_sub(initial) / hz)
    }

    /// Seconds since boot from the timekeeper (CLOCK_BOOTTIME at the last tick).
    pub fn timekeeper_uptime(&self) -> Option<u64> {
        self.boot_ns().map(|n| n / 1_000_000_000)
    }

    /// Monotonic+boot time in ns from the timekeeper (`tk_core.timekeeper`).
    fn boot_ns(&self) -> Option<u64> {
        let tk = self.symbol("tk_core")?;
        let tko = self.tk_offset()?;
        let tkm = self.field("timekeeper", "tkr_mono.base").ok()?;
        let boot = self.field("timekeeper", "offs_boot").ok();
        let base = self.read_u64(tk + tko + tkm.offset).ok()?;
        let ob = boot
            .and_then(|b| self.read_u64(tk + tko + b.offset).ok())
            .unwrap_or(0);
        Some(base.wrapping_add(ob))
    }

    /// RAM as the kernel counts it (what crash prints): the sum of `node_present_pages` of
    /// each node (`node_data[]` with NUMA, `contig_page_data` without). The dump's own memory
    /// map differs between formats (QEMU's ELF maps every RAM block, kdump bitmaps only pages
    /// the kernel knows), so it is only the fallback.
    pub fn memory_bytes(&self) -> Option<u64> {
        let f = self.field("pglist_data", "node_present_pages").ok()?;
        let mut pages = 0u64;
        if let Some(nd) = self.symbol("node_data") {
            let n = self
                .vmcoreinfo
                .lengths
                .get("node_data")
                .copied()
                .unwrap_or(64)
                .min(1024);
            for i in 0..n {
                let p = self.read_u64(nd + 8 * i).ok()?;
                if p != 0 {
                    pages += self.read_u64(p + f.offset).ok()?;
                }
            }
        } else {
            let p = self.symbol("contig_page_data")?;
            pages = self.read_u64(p + f.offset).ok()?;
        }
        (pages > 0).then_some(pages * 4096)
    }

    fn wall_secs(&self) -> Option<i64> {
        let tk = self.symbol("tk_core")?;
        let tko = self.tk_offset()?;
        let x = self.field("timekeeper", "xtime_sec").ok()?;
        self.read_u64(tk + tko + x.offset).ok().map(|v| v as i64)
    }

    pub fn sys(&self, log: Option<&[LogRecord]>) -> SysInfo {
        let uts = self.utsname();
        let kh = self.dump.kdump_header();
        let pick = |i: usize, kh_i: usize| {
            uts.as_ref()
                .map(|u| u[i].clone())
                .or_else(|| kh.map(|h| h.utsname[kh_i].clone()))
                .filter(|s| !s.is_empty())
        };
        let uptime = self
            .jiffies_uptime()
            .or_else(|| self.timekeeper_uptime())
            .or_else(|| {
                log.and_then(|l| l.last())
                    .map(|r| r.ts_nsec / 1_000_000_000)
            });
        let crash_time = self
            .vmcoreinfo
            .crash_time
            .or_else(|| kh.map(|h| h.timestamp.0).filter(|&t| t > 0))
            .or_else(|| self.wall_secs());
        SysInfo {
            dumpfile: self.path.display().to_string(),
            format: self.dump.format().name().to_string(),
            kernel: self.vmlinux.as_ref().map(|v| v.path.display().to_string()),
            release: pick(2, 2).or_else(|| self.vmcoreinfo.osrelease.clone()),
            version: pick(3, 3),
            machine: pick(4, 4),
            nodename: pick(1, 1),
            cpus: self.present_cpus().len() as u32,
            offline_cpus: {
                let on = self.online_cpus();
                self.present_cpus()
                    .into_iter()
                    .filter(|c| !on.contains(c))
                    .collect()
            },
            memory: self.memory_bytes().unwrap_or_else(|| {
                let m = self.dump.memory_size();
                if self.field("pglist_data", "node_present_pages").is_ok() {
                    self.warnings.push(
                        crate::warnings::Warning::new(
                            crate::warnings::Kind::Unreadable,
                            format!(
                                "MEMORY: node_present_pages is unreadable in this dump; {} is the size of the dump's memory map instead",
                                m
                            ),
                        )
                        .what("node_data"),
                    );
                }
                m
            }),
            uptime_secs: uptime,
            crash_time,
            panic: log.and_then(panic_message),
            tasks: None,
            kaslr_offset: format!("{:#x}", self.kaslr),
            vmcoreinfo: match self.vmcoreinfo_source {
                crate::program::VmcoreinfoSource::Note => "note",
                crate::program::VmcoreinfoSource::MemoryScan => "memory scan",
                crate::program::VmcoreinfoSource::None => "none",
            }
            .to_string(),
        }
    }
}

/// `Sat Nov 21 18:26:39 UTC 2026`, like date(1) in UTC.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    let wd = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    let wn = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][wd as usize];
    let mn = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wn} {mn} {d:2} {h:02}:{m:02}:{s:02} UTC {y}")
}

/// `00:01:23` or `2 days, 03:04:05`, like crash's UPTIME.
pub fn format_uptime(secs: u64) -> String {
    let d = secs / 86400;
    let r = secs % 86400;
    let hms = format!("{:02}:{:02}:{:02}", r / 3600, r % 3600 / 60, r % 60);
    match d {
        0 => hms,
        1 => format!("1 day, {hms}"),
        _ => format!("{d} days, {hms}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(format_utc(1763749599), "Fri Nov 21 18:26:39 UTC 2025");
        assert_eq!(format_uptime(3723), "01:02:03");
        assert_eq!(format_uptime(2 * 86400 + 5), "2 days, 00:00:05");
    }
}

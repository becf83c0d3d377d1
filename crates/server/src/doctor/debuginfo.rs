//! Debug info for the running kernel: a vmlinux whose GNU build-id is the running kernel's
//! (`/sys/kernel/notes`), where `kmortem decode` looks for one, so that a crash of this kernel
//! decodes to file:line here.

use super::{Check, Ctx, Status};
use std::path::Path;

/// The GNU build-id in a sequence of ELF notes (`/sys/kernel/notes` is the kernel's `.notes`
/// section as it is in memory: `namesz`, `descsz`, `type`, name and desc each padded to 4
/// bytes). `None` when there is none or the data is malformed.
pub fn build_id_in_notes(data: &[u8]) -> Option<Vec<u8>> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            data.get(o..o.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let pad = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut off = 0usize;
    while off.checked_add(12)? <= data.len() {
        let namesz = u32_at(off)? as usize;
        let descsz = u32_at(off + 4)? as usize;
        let ty = u32_at(off + 8)?;
        let name_at = off + 12;
        let desc_at = name_at.checked_add(pad(namesz)?)?;
        let next = desc_at.checked_add(pad(descsz)?)?;
        let name = data.get(name_at..name_at.checked_add(namesz)?)?;
        let desc = data.get(desc_at..desc_at.checked_add(descsz)?)?;
        if ty == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        if next <= off {
            return None;
        }
        off = next;
    }
    None
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The build-id of an ELF file, reading only its headers and notes (a -dbg vmlinux is
/// hundreds of MB).
pub fn build_id_of_file(p: &Path) -> Result<Option<Vec<u8>>, String> {
    use object::Object as _;
    let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let cache = object::read::ReadCache::new(f);
    let obj = object::File::parse(&cache).map_err(|e| format!("not an ELF file: {e}"))?;
    obj.build_id()
        .map(|b| b.map(<[u8]>::to_vec))
        .map_err(|e| e.to_string())
}

/// Where a vmlinux for `release` with build-id `id` is looked for, as host paths: the
/// debuginfo build-id tree first (`/usr/lib/debug/.build-id/xx/rest.debug`), then every path
/// `kmortem decode` tries for the release (kmortem_symbols::locate::vmlinux_candidates).
pub fn candidates(release: &str, id: Option<&[u8]>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(id) = id.filter(|i| i.len() > 1) {
        let h = hex(id);
        out.push(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &h[..2],
            &h[2..]
        ));
    }
    let root = std::path::PathBuf::from("/");
    for c in kmortem_symbols::locate::vmlinux_candidates(Some(release), &[root], false) {
        let s = c.display().to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

pub fn check(ctx: &mut Ctx, release: Option<&str>) -> Check {
    const NAME: &str = "debuginfo";
    let Some(rel) = release else {
        return ctx.check(
            NAME,
            Status::Warn,
            "cannot read the running kernel's release (/proc/sys/kernel/osrelease)",
            None,
        );
    };
    let id = match ctx.read_bytes_quiet("/sys/kernel/notes") {
        Ok(b) => {
            let id = build_id_in_notes(&b);
            ctx.note(
                "/sys/kernel/notes",
                Ok(match &id {
                    Some(i) => format!("GNU build-id {}", hex(i)),
                    None => format!("{} bytes, no GNU build-id note", b.len()),
                }),
            );
            id
        }
        Err(e) => {
            ctx.note("/sys/kernel/notes", Err(e));
            None
        }
    };
    let dbg_pkg = match ctx
        .read_opt("/etc/os-release")
        .ok()
        .flatten()
        .and_then(|t| super::kdump::shell_var(&t, "ID"))
        .as_deref()
    {
        Some("ubuntu") => {
            format!("apt install linux-image-{rel}-dbgsym (from the ddebs.ubuntu.com archive)")
        }
        Some("rhel" | "centos" | "fedora" | "rocky" | "almalinux") => {
            "dnf debuginfo-install kernel-$(uname -r)".to_string()
        }
        _ => format!(
            "apt install {} (Debian; the -dbgsym package elsewhere)",
            kmortem_symbols::locate::debian_dbg_package(rel)
        ),
    };
    let mut mismatched = Vec::new();
    for c in candidates(rel, id.as_deref()) {
        let p = ctx.path(&c);
        if !p.is_file() {
            continue;
        }
        match build_id_of_file(&p) {
            Ok(Some(b)) if id.as_ref().is_none_or(|i| *i == b) => {
                ctx.note(&c, Ok(format!("GNU build-id {}", hex(&b))));
                let by_id = c.contains("/.build-id/");
                let how = if by_id {
                    format!(
                        "; kmortem decode does not search the build-id tree: pass --vmlinux {c}"
                    )
                } else {
                    String::new()
                };
                return ctx.check(
                    NAME,
                    if id.is_some() {
                        Status::Ok
                    } else {
                        Status::Warn
                    },
                    if id.is_some() {
                        format!(
                            "{c} has the running kernel's build-id ({}): kmortem decode gives \
                             file:line for this kernel's crashes{how}",
                            hex(&b)
                        )
                    } else {
                        format!(
                            "{c} found, but the running kernel's build-id is unknown \
                             (/sys/kernel/notes): cannot tell that it matches"
                        )
                    },
                    None,
                );
            }
            Ok(Some(b)) => {
                ctx.note(&c, Ok(format!("GNU build-id {} (another build)", hex(&b))));
                mismatched.push(c);
            }
            Ok(None) => {
                ctx.note(&c, Ok("no build-id".into()));
                mismatched.push(c);
            }
            Err(e) => ctx.note(&c, Err(e)),
        }
    }
    let idtxt = id.as_ref().map_or("unknown".to_string(), |i| hex(i));
    if !mismatched.is_empty() {
        return ctx.check(
            NAME,
            Status::Warn,
            format!(
                "{} belong(s) to another build of {rel} (running build-id {idtxt}): decoding \
                 with it gives wrong lines",
                mismatched.join(", ")
            ),
            Some(format!(
                "install the debug info of the running build: {dbg_pkg}; remove the stale file"
            )),
        );
    }
    ctx.note(
        &format!("/usr/lib/debug/boot/vmlinux-{rel} (and the other places decode looks)"),
        Err("absent".into()),
    );
    ctx.check(
        NAME,
        Status::Warn,
        format!(
            "no vmlinux with debug info for {rel} (build-id {idtxt}): kmortem decode and \
             explain cannot give file:line here (a machine that has it can)"
        ),
        Some(dbg_pkg),
    )
}

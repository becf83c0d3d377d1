#!/usr/bin/env python3
"""The kmortem crash lab driver (called by lab/build; see lab/README.md).

Builds, idempotently, for every kernel pinned in lab/kernels.toml, under
~/.cache/kmortem/lab/<release>/:
  debs/ root/ module/ initramfs.cpio.gz scenarios/<name>/{console.log,meta.json,vmcore.*,oracle/}
Every step is skipped when its output exists and its input hash (stamp file) matches.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib

LAB_SRC = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(LAB_SRC)
CACHE = os.environ.get("KMORTEM_CACHE", os.path.expanduser("~/.cache/kmortem"))
VENV = os.path.join(CACHE, "venv")
KERNELS_TOML = os.path.join(LAB_SRC, "kernels.toml")
T0 = time.time()
# Bump when the layout or the content of scenario outputs changes (invalidates every scenario).
LAB_FORMAT = 1


_TLS = __import__("threading").local()


def log(msg):
    """A progress line; scenario work prefixes it with its kernel (`[6.12] bug: ...`)."""
    print(f"[lab {time.time() - T0:6.1f}s] {getattr(_TLS, 'prefix', '')}{msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def out(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()[:16]


def file_sha(*paths):
    return sha(*[open(p, "rb").read() for p in paths])


def stamp_ok(path, value):
    try:
        return open(path).read().strip() == value
    except OSError:
        return False


def write_stamp(path, value):
    with open(path, "w") as f:
        f.write(value + "\n")


# ------------------------------------------------------------------------------------ kernel


def load_kernels(selected=None):
    """The kernels pinned in lab/kernels.toml, in file order; `selected` (names, or None for all,
    also from KMORTEM_LAB_KERNELS) keeps some."""
    with open(KERNELS_TOML, "rb") as f:
        kernels = tomllib.load(f)["kernel"]
    selected = selected or os.environ.get("KMORTEM_LAB_KERNELS")
    if selected:
        names = [n.strip() for n in selected.split(",") if n.strip()]
        unknown = [n for n in names if not any(k["name"] == n for k in kernels)]
        if unknown:
            sys.exit(f"lab: no kernel named {', '.join(unknown)} in {KERNELS_TOML} "
                     f"(known: {', '.join(k['name'] for k in kernels)})")
        kernels = [k for k in kernels if k["name"] in names]
    return kernels


def lab_dir(k):
    return os.path.join(CACHE, "lab", k["release"])


def apt_update_once(_done=[]):
    if not _done:
        log("apt-get update (looking for the pinned kernel packages)")
        run(["sudo" if os.getuid() else "env", "apt-get", "update", "-qq"])
        _done.append(True)


def archive_versions(pkg):
    """The versions of `pkg` that apt can download (apt-cache madison)."""
    r = subprocess.run(["apt-cache", "madison", pkg], capture_output=True, text=True)
    return [parts[1].strip() for line in r.stdout.splitlines()
            if len(parts := line.split("|")) >= 3]


def newest_abi(k):
    """`release (version)` of the newest ABI that the kernel's meta-package depends on."""
    try:
        deps = out(["apt-cache", "depends", k["meta"]])
    except subprocess.CalledProcessError:
        return "unknown (apt does not know " + k["meta"] + ")"
    m = re.search(r"Depends: linux-image-(\d\S*?-cloud-amd64)(?:-unsigned|-dbg)?\b", deps)
    if not m:
        return "unknown (" + k["meta"] + " names no linux-image)"
    pol = out(["apt-cache", "policy", f"linux-image-{m.group(1)}"])
    v = re.search(r"Candidate: (\S+)", pol)
    return f"{m.group(1)} ({v.group(1) if v else '?'})"


def fetch_kernel(k, d):
    """debs/ (each pinned package at the pinned version) and root/ (their dpkg -x)."""
    rel, version, pkgs = k["release"], k["version"], k["packages"]
    debs = os.path.join(d, "debs")
    root = os.path.join(d, "root")
    os.makedirs(debs, exist_ok=True)
    marker = os.path.join(root, ".extracted")
    info = {"name": k["name"], "kernel_release": rel, "kernel_version": version,
            "packages": pkgs, "oracles": k["oracles"]}
    if os.path.exists(marker) and stamp_ok(marker, f"{rel} {version}"):
        json.dump(info, open(os.path.join(d, "kernel.json"), "w"), indent=2)
        return info
    # A deb's file name is NAME_VERSION_ARCH.deb (an epoch's ':' is written %3a).
    fver = version.replace(":", "%3a")
    have = os.listdir(debs)
    need = [p for p in pkgs if not any(f.startswith(f"{p}_{fver}_") for f in have)]
    if need:
        missing = [p for p in need if version not in archive_versions(p)]
        if missing:
            apt_update_once()
            missing = [p for p in need if version not in archive_versions(p)]
        if missing:
            sys.exit(f"lab: kernel {k['name']} is pinned to {rel} ({version}), but the archive no "
                     f"longer offers {', '.join(missing)}; the newest {k['name']} ABI is "
                     f"{newest_abi(k)}: pin it in lab/kernels.toml (see lab/README.md, "
                     "\"Moving to a newer ABI\") and run lab/build")
        log(f"{k['name']}: apt-get download {' '.join(need)} ({version}; the -dbg package is "
            "~300 MB)")
        run(["apt-get", "download", "-q"] + [f"{p}={version}" for p in need], cwd=debs)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for f in sorted(os.listdir(debs)):
        if f.endswith(".deb") and any(f.startswith(f"{p}_{fver}_") for p in pkgs):
            log(f"dpkg -x {f}")
            run(["dpkg", "-x", os.path.join(debs, f), root])
    write_stamp(marker, f"{rel} {version}")
    json.dump(info, open(os.path.join(d, "kernel.json"), "w"), indent=2)
    return info


# ------------------------------------------------------------------------------------ module


def build_module(rel, d, opt=None):
    """module/<hash>/kmlab.ko (built there, with its source: DWARF names that path), and a copy
    at module/kmlab.ko. Each scenario's meta.json names the versioned .ko and source, so dumps
    made with an older module stay consistent while a newer one is being built.

    `opt` (`-O1`, `-Os`) builds module/<hash><opt>/kmlab.ko from the same source with
    `ccflags-y += <opt>` appended to its Kbuild (the kernel's -O2 comes first on the command
    line, so the module's own flag wins), for the scenarios that explain code of another
    optimisation level; module/kmlab.ko stays the -O2 build."""
    root = os.path.join(d, "root")
    src = os.path.join(LAB_SRC, "module")
    mdir = os.path.join(d, "module")
    h = file_sha(os.path.join(src, "kmlab.c"), os.path.join(src, "Kbuild"))
    tag = h + (opt or "")
    bdir = os.path.join(mdir, tag)
    stamp = os.path.join(mdir, ".stamp" + (opt or ""))
    ko = os.path.join(mdir, "kmlab.ko")
    built = os.path.join(bdir, "kmlab.ko")
    if (opt or os.path.exists(ko)) and os.path.exists(built) and stamp_ok(stamp, tag):
        return tag
    log(f"building kmlab.ko{' ' + opt if opt else ''} against the extracted headers")
    shutil.rmtree(bdir, ignore_errors=True)
    os.makedirs(bdir)
    for f in ("kmlab.c", "Kbuild"):
        shutil.copy(os.path.join(src, f), bdir)
    if opt:
        with open(os.path.join(bdir, "Kbuild"), "a") as f:
            f.write(f"# lab variant: the module at {opt}\nccflags-y += {opt}\n")
    hdr = os.path.join(root, f"usr/src/linux-headers-{rel}")
    # The flavour's Makefile includes /usr/src/linux-headers-*-common/Makefile by absolute path;
    # call the extracted common Makefile directly with the flavour dir as the object tree.
    common = os.readlink(os.path.join(root, f"lib/modules/{rel}/source"))
    common = os.path.join(root, common.lstrip("/"))
    cc = "gcc-12" if shutil.which("gcc-12") else "gcc"
    run(["make", "-s", "-C", hdr, "-f", os.path.join(common, "Makefile"), f"M={bdir}",
         f"CC={cc}", "modules"])
    if not opt:
        shutil.copy(built, ko + ".tmp")
        os.rename(ko + ".tmp", ko)
    write_stamp(stamp, tag)
    return tag


# ------------------------------------------------------------------------------------ initramfs


def write_cpio_gz(tree, dst):
    import gzip
    files = out(["find", "."], cwd=tree)
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--owner", "0:0"],
                          input=files.encode(), cwd=tree, capture_output=True, check=True).stdout
    with open(dst + ".tmp", "wb") as f:
        f.write(gzip.compress(cpio, 6))
    os.rename(dst + ".tmp", dst)


def copy_module(base, dst_dir):
    """Copies BASE.ko into dst_dir, or BASE.ko.xz decompressed (busybox's insmod passes the file
    to init_module(2), which takes no compressed module). A module that is neither is built in
    (6.12's cloud kernel has virtio and virtio_pci built in; 6.1 has them as modules)."""
    # Folklore: Debian compresses modules with xz since its 6.x kernels moved to
    # CONFIG_MODULE_COMPRESS_XZ (the 6.12 backports kernel ships only .ko.xz; 6.1 ships .ko).
    # The kernel can decompress itself (CONFIG_MODULE_DECOMPRESS) only through finit_module
    # with MODULE_INIT_COMPRESSED_FILE, which busybox does not use.
    name = os.path.basename(base) + ".ko"
    if os.path.exists(base + ".ko"):
        shutil.copy(base + ".ko", os.path.join(dst_dir, name))
    elif os.path.exists(base + ".ko.xz"):
        import lzma
        with lzma.open(base + ".ko.xz") as f, open(os.path.join(dst_dir, name), "wb") as o:
            shutil.copyfileobj(f, o)


def initramfs_path(d, opt=None):
    """The initramfs with the -O2 kmlab.ko, or with the `opt` build (initramfs-O1.cpio.gz)."""
    return os.path.join(d, f"initramfs{opt or ''}.cpio.gz")


def build_initramfs(rel, d, mod_hash, opt=None):
    root = os.path.join(d, "root")
    init = os.path.join(LAB_SRC, "initramfs", "init")
    out_path = initramfs_path(d, opt)
    h = sha(file_sha(init), mod_hash, open("/bin/busybox", "rb").read()[:4096])
    stamp = out_path + ".stamp"
    if os.path.exists(out_path) and stamp_ok(stamp, h):
        return h
    log(f"building {os.path.basename(out_path)} (busybox-static, kmlab.ko, qemu_fw_cfg, virtio, "
        "makedumpfile)")
    with tempfile.TemporaryDirectory() as t:
        for sub in ("bin", "sbin", "proc", "sys", "dev", "lib/modules", "boot", "tmp", "usr/bin",
                    "lib64", "etc"):
            os.makedirs(os.path.join(t, sub), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(t, "bin/busybox"))
        shutil.copy(init, os.path.join(t, "init"))
        os.chmod(os.path.join(t, "init"), 0o755)
        shutil.copy(os.path.join(d, "module", mod_hash, "kmlab.ko") if opt else
                    os.path.join(d, "module/kmlab.ko"), os.path.join(t, "lib/modules"))
        kmods = os.path.join(root, f"lib/modules/{rel}/kernel/drivers")
        for rp in ("firmware/qemu_fw_cfg", "virtio/virtio", "virtio/virtio_ring",
                   "virtio/virtio_pci", "virtio/virtio_pci_legacy_dev",
                   "virtio/virtio_pci_modern_dev", "block/virtio_blk"):
            copy_module(os.path.join(kmods, rp), os.path.join(t, "lib/modules"))
        for exe in ("/usr/bin/makedumpfile", "/sbin/kexec"):
            exe = os.path.realpath(exe)
            shutil.copy(exe, os.path.join(t, "usr/bin", os.path.basename(exe)))
            for line in out(["ldd", exe]).splitlines():
                m = re.search(r"(/\S+\.so[.\d]*)", line)
                if m:
                    lib = m.group(1)
                    dst = os.path.join(t, lib.lstrip("/"))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy(os.path.realpath(lib), dst)
        write_cpio_gz(t, out_path)
        if opt:
            write_stamp(stamp, h)
            return h
        # kdump: the first kernel also carries the capture kernel (the same kernel) and the
        # plain initramfs, for `kexec -p`.
        shutil.copy(os.path.join(root, f"boot/vmlinuz-{rel}"), os.path.join(t, "boot/vmlinuz"))
        shutil.copy(out_path, os.path.join(t, "boot/initramfs.cpio.gz"))
        write_cpio_gz(t, os.path.join(d, "initramfs-kdump.cpio.gz"))
    write_stamp(stamp, h)
    return h


# ------------------------------------------------------------------------------------ scenarios

# no_timer_check: under TCG on a loaded host the IO-APIC timer check can fail and panic the
# boot ("IO-APIC + timer doesn't work!").
BASE = "console=ttyS0,115200 panic=0 oops=panic no_timer_check"
LOCKUP = "softlockup_panic=1 watchdog_thresh=4"

# name: trigger, kind, title, extra cmdline, variant flags, and which dumps to keep.
# kind is kmortem-oops' Kind in snake_case; titles follow syzkaller's conventions.
FULL = ["elf", "kdump-zlib", "kdump-lzo", "kdump-d31", "flat"]
SMALL = ["kdump-zlib"]
SCENARIOS = [
    dict(name="null_deref", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_device_get",
         func="kmlab_device_get", dumps=FULL),
    dict(name="bug", kind="kernel_bug", title="kernel BUG in kmlab_check_invariant",
         func="kmlab_check_invariant", dumps=FULL),
    dict(name="paging", kind="paging_request",
         title="BUG: unable to handle kernel paging request in kmlab_device_get",
         func="kmlab_device_get", dumps=SMALL),
    dict(name="gpf", kind="general_protection_fault",
         title="general protection fault in kmlab_read_node", func="kmlab_read_node",
         dumps=SMALL),
    dict(name="divide_error", kind="divide_error", title="divide error in kmlab_compute_average",
         func="kmlab_compute_average", dumps=SMALL),
    dict(name="list_add_corruption", kind="list_corruption",
         title="BUG: corrupted list in kmlab_insert_node", func="kmlab_insert_node",
         dumps=SMALL),
    dict(name="list_del_corruption", kind="list_corruption",
         title="BUG: corrupted list in kmlab_remove_node", func="kmlab_remove_node",
         dumps=SMALL),
    dict(name="stack_protector", kind="stack_protector",
         title="kernel panic: stack is corrupted in kmlab_parse_request",
         func="kmlab_parse_request", dumps=SMALL),
    dict(name="double_free", kind="kernel_bug", title="kernel BUG in kmlab_release_session",
         func="kmlab_release_session", dumps=SMALL),
    dict(name="uaf", kind="general_protection_fault",
         title="general protection fault in kmlab_session_touch", func="kmlab_session_touch",
         extra="slub_debug=P,kmlab_session", dumps=SMALL),
    dict(name="warning", kind="warning", title="WARNING in kmlab_put_ref", func="kmlab_put_ref",
         extra="panic_on_warn=1", dumps=SMALL),
    dict(name="soft_lockup", kind="soft_lockup", title="BUG: soft lockup in kmlab_softlockup_thread",
         func="kmlab_softlockup_thread", extra=LOCKUP, dumps=SMALL, timeout=180),
    # A hard lockup (spinning with interrupts off). The NMI watchdog needs a PMU, which QEMU's
    # TCG does not emulate ("NMI watchdog: Perf NMI watchdog permanently disabled"), and neither
    # kernel uses the buddy detector (6.1 has none; 6.12's cloud config does not prefer it), so
    # the other CPU's RCU stall detector reports it, with an NMI backtrace of the stuck CPU.
    # Folklore: with the soft-lockup detector on, the other CPU could print `BUG: soft lockup`
    # first (stuck in smp_call_function_many_cond waiting for the spinning CPU), and which
    # watchdog won depended on timing (seen on a fresh build, issue 14). `nosoftlockup` leaves
    # the RCU stall as the only report. kmlab's trigger also keeps TLB-flush IPIs away from the
    # spinning CPU (one once left the other CPU stuck in smp_call_function and the stall was
    # titled after it; kmlab_do_hard_lockup); crates/lab/tests/titles.rs pins the title.
    dict(name="irqs_off_stall", trigger="hard_lockup", kind="rcu_stall",
         title="INFO: rcu detected stall in kmlab_irqsoff_thread", func="kmlab_irqsoff_thread",
         extra="sysctl.kernel.panic_on_rcu_stall=1 rcupdate.rcu_cpu_stall_timeout=5 nosoftlockup",
         dumps=SMALL, timeout=180),
    dict(name="hung_task", kind="hung_task", title="INFO: task hung in kmlab_recv_reply",
         func="kmlab_recv_reply",
         extra="hung_task_panic=1 sysctl.kernel.hung_task_timeout_secs=3", dumps=SMALL,
         timeout=180),
    dict(name="rcu_stall", kind="rcu_stall", title="INFO: rcu detected stall in kmlab_reader_thread",
         func="kmlab_reader_thread",
         extra="sysctl.kernel.panic_on_rcu_stall=1 rcupdate.rcu_cpu_stall_timeout=3",
         dumps=SMALL, timeout=180),
    dict(name="timer_null", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_watchdog_fn",
         func="kmlab_watchdog_fn", dumps=SMALL),
    dict(name="hrtimer_bug", kind="kernel_bug", title="kernel BUG in kmlab_pulse_fn",
         func="kmlab_pulse_fn", dumps=SMALL),
    # syzkaller skips every frame whose name contains `flush_work` (its skip patterns are
    # substrings, meant for flush_work()/__flush_work()), the RIP frame kmlab_flush_work_fn
    # too, so the title names the next frame; the guilty frame is still kmlab_flush_work_fn.
    dict(name="workqueue_null", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in process_one_work",
         func="kmlab_flush_work_fn", dumps=SMALL),
    dict(name="estats_null", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_estats_update_mss",
         func="kmlab_estats_update_mss", dumps=["elf", "kdump-zlib"]),
    dict(name="leaf_cfs_rq", kind="list_corruption",
         title="BUG: corrupted list in kmlab_enqueue_entity",
         func="kmlab_enqueue_entity", dumps=SMALL),
    dict(name="timer_reinit", kind="general_protection_fault",
         title="general protection fault in __run_timers", func="__run_timers", dumps=SMALL),
    dict(name="wrong_cpu_index", kind="paging_request",
         title="BUG: unable to handle kernel paging request in kmlab_bio_merge",
         func="kmlab_bio_merge", dumps=SMALL),
    # New shapes of the seed bugs (issue 21): explain must name the variable, member and verdict
    # of code it was not developed against. Their expected findings are in
    # crates/explain/tests/shapes.rs.
    dict(name="null_member_deep", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_request_mtu",
         func="kmlab_request_mtu", dumps=SMALL),
    # Folklore: hlist_del() has no CONFIG_DEBUG_LIST check (6.1 and 6.12 alike), so a second
    # hlist_del() is not a list report: __hlist_del() writes through the LIST_POISON2 left in
    # n->pprev, a non-canonical address (GPF).
    dict(name="hlist_double_del", kind="general_protection_fault",
         title="general protection fault in kmlab_peer_unhash", func="kmlab_peer_unhash",
         dumps=SMALL),
    # get_cpu_ptr(&kmlab_hits[0x2000000]) of a per-CPU array of 4: 768 MB past the module's
    # per-CPU area (embedded in the direct map, 256 MB of RAM): an unmapped address.
    dict(name="percpu_index", kind="paging_request",
         title="BUG: unable to handle kernel paging request in kmlab_account_hit",
         func="kmlab_account_hit", dumps=SMALL),
    # slab_nomerge: the two 64-byte caches must not be merged with kmalloc-64 (or with each
    # other), so that the token's slab page really goes back to the page allocator.
    dict(name="uaf_realloc", kind="general_protection_fault",
         title="general protection fault in kmlab_token_get", func="kmlab_token_get",
         extra="slab_nomerge", dumps=SMALL),
    # A benign WARNING (no panic_on_warn: the machine goes on) before the fatal oops: explain
    # must explain the second report, the one `Kernel panic - not syncing` follows.
    dict(name="warn_then_oops", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_request_mtu",
         func="kmlab_request_mtu", reports=2, dumps=SMALL),
    # variants of null_deref
    dict(name="null_deref_nokaslr", trigger="null_deref", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_device_get",
         func="kmlab_device_get", extra="nokaslr", flags=["nokaslr"], dumps=["elf", "kdump-zlib"]),
    dict(name="null_deref_la57", trigger="null_deref", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_device_get",
         func="kmlab_device_get", cpu="qemu64,+la57", flags=["la57"],
         dumps=["elf", "kdump-zlib"]),
    dict(name="null_deref_no_vmcoreinfo", trigger="null_deref", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_device_get",
         func="kmlab_device_get", vmcoreinfo=False, flags=["no_vmcoreinfo"],
         dumps=["elf", "kdump-zlib"]),
    dict(name="null_deref_limp_on", trigger="null_deref", kind="null_pointer_dereference",
         title="BUG: unable to handle kernel NULL pointer dereference in kmlab_device_get",
         func="kmlab_device_get", base="console=ttyS0,115200 panic=0 no_timer_check", flags=["limp_on"],
         dumps=["elf", "kdump-zlib"]),
    # kdump, the real way: crashkernel= reserved, `kexec -p` of the same kernel, makedumpfile
    # in the capture kernel writes a flattened stream to a virtio disk, reassembled on the host.
    dict(name="kdump_bug", trigger="bug", kind="kernel_bug", title="kernel BUG in kmlab_check_invariant",
         func="kmlab_check_invariant", extra="crashkernel=160M kmlab.kdump=1", mem=512,
         kdump=True, flags=["kdump"], dumps=["kdump"], timeout=300),
    dict(name="live", trigger="live", kind=None, title=None, func=None, flags=["live"],
         dumps=["elf", "kdump-zlib"]),
    # thousands of tasks (busybox sleepers forked by an initramfs overlay, see
    # initramfs/many-tasks) for the `bt -a` / `foreach bt` / `ps` benchmarks against crash and drgn.
    # The overlay keeps the other scenarios' stamps unchanged.
    dict(name="many_tasks", trigger="bug", kind="kernel_bug",
         title="kernel BUG in kmlab_check_invariant", func="kmlab_check_invariant",
         overlay=dict(script="many-tasks", tasks=3000), mem=1024, dumps=SMALL, timeout=300),
]

# The explain-relevant scenarios again, with kmlab.ko built at -O1 and -Os (module/<hash>-O1/,
# initramfs-O1.cpio.gz): the same bugs in code the compiler laid out differently. Cheap on
# purpose (CI builds the lab from scratch): one kdump-zlib dump, drgn and addr2line oracles,
# no crash session.
OPT_LEVELS = [("O1", "-O1"), ("Os", "-Os")]
# Two array shapes only (issue 21 items 2 and 3): every variant is two more TCG boots in CI.
OPT_VARIANTS_OF = ["wrong_cpu_index", "percpu_index"]
for _base in [sc for sc in SCENARIOS if sc["name"] in OPT_VARIANTS_OF]:
    for _tag, _flag in OPT_LEVELS:
        SCENARIOS.append(dict(_base, name=f"{_base['name']}_{_tag}",
                              trigger=_base.get("trigger", _base["name"]), opt=_flag,
                              dumps=SMALL, oracles=["drgn", "addr2line"]))


def overlay_initrd(sc, d, base):
    """The lab's initramfs with the scenario's overlay cpio appended (the kernel unpacks
    concatenated archives in order, so the overlay's /init wins). Returns the initrd path."""
    ov = sc.get("overlay")
    if not ov:
        return base
    import gzip
    script = open(os.path.join(LAB_SRC, "initramfs", ov["script"])).read()
    script = script.replace("@TASKS@", str(ov.get("tasks", "")))
    out_path = os.path.join(d, "scenarios", sc["name"], ".initrd.cpio.gz")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        with open(os.path.join(t, "init"), "w") as f:
            f.write(script)
        os.chmod(os.path.join(t, "init"), 0o755)
        shutil.copy(os.path.join(LAB_SRC, "initramfs", "init"), os.path.join(t, "init.lab"))
        os.chmod(os.path.join(t, "init.lab"), 0o755)
        write_cpio_gz(t, out_path + ".ov")
    with open(out_path, "wb") as f:
        f.write(open(base, "rb").read())
        f.write(open(out_path + ".ov", "rb").read())
    os.unlink(out_path + ".ov")
    return out_path

PANIC_RE = re.compile(rb"---\[ end Kernel panic")
OOPS_END_RE = re.compile(rb"---\[ end trace [0-9a-f]+ \]---")
LIVE_RE = re.compile(rb"kmlab-init: live guest idle")


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(200):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("cannot connect to QMP at " + path)
        self.f = self.s.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        r = self._read()
        if "error" in r:
            raise RuntimeError(f"QMP {name}: {r['error']}")
        return r["return"]


def boot_and_dump(sc, d, sdir, rel):
    name, trig = sc["name"], sc.get("trigger", sc["name"])
    root = os.path.join(d, "root")
    cmdline = f"{sc.get('base', BASE)} {sc.get('extra', '')} kmlab.scenario={trig}".replace("  ", " ")
    console = os.path.join(sdir, "console.log")
    sock = os.path.join(tempfile.gettempdir(), f"kmlab-qmp-{os.getpid()}-{rel}-{name}.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    qemu = ["nice", "-n", "5", "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-smp", "2",
            "-m", str(sc.get("mem", 256)), "-cpu", sc.get("cpu", "qemu64"),
            "-kernel", os.path.join(root, f"boot/vmlinuz-{rel}"),
            "-initrd", overlay_initrd(sc, d, initramfs_path(d, sc.get("opt"))),
            "-append", cmdline,
            "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
            "-qmp", f"unix:{sock},server=on,wait=off", "-no-reboot"]
    if sc.get("vmcoreinfo", True):
        qemu += ["-device", "vmcoreinfo"]
    disk = os.path.join(sdir, ".kdump-disk.img")
    if sc.get("kdump"):
        with open(disk, "wb") as f:
            f.truncate(512 << 20)
        qemu += ["-drive", f"file={disk},format=raw,if=virtio"]
        qemu[qemu.index("-initrd") + 1] = overlay_initrd(
            sc, d, os.path.join(d, "initramfs-kdump.cpio.gz"))
    qemu += sc.get("qemu_extra", [])
    log(f"{name}: booting ({cmdline})")
    t = time.time()
    p = subprocess.Popen(qemu, stdin=subprocess.DEVNULL)
    if sc.get("kdump"):
        return kdump_wait(sc, p, sock, console, disk, sdir, cmdline, t)
    try:
        q = Qmp(sock)
        timeout = sc.get("timeout", 120) * TIMEOUT_SCALE
        flags = sc.get("flags", [])
        settled = None
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"{name}: QEMU exited with {p.returncode}; see {console}")
            data = open(console, "rb").read() if os.path.exists(console) else b""
            if "live" in flags:
                hit = LIVE_RE.search(data)
                wait = 2.0
            elif "limp_on" in flags:
                hit = OOPS_END_RE.search(data)
                wait = 3.0
            else:
                hit = PANIC_RE.search(data)
                wait = 0.5
            if hit and settled is None:
                settled = time.time() + wait
            if settled and time.time() >= settled:
                break
            if time.time() - t > timeout:
                raise RuntimeError(f"{name}: no crash within {timeout}s; see {console}")
            time.sleep(0.2)
        log(f"{name}: crashed after {time.time() - t:.1f}s; dumping")
        q.cmd("stop")
        dumps = []
        for fmt in ("elf", "kdump-zlib"):
            path = os.path.join(sdir, "vmcore." + fmt)
            keep = fmt in sc["dumps"] or (fmt == "elf" and any(
                x in sc["dumps"] for x in ("kdump-lzo", "kdump-d31", "flat")))
            if keep and fmt == "elf":
                q.cmd("dump-guest-memory", paging=False, protocol="file:" + path, format=fmt)
            elif keep:
                # Folklore: QEMU < 8.2 writes its kdump-* formats in makedumpfile's *flattened*
                # layout (QEMU 8.2 added kdump-raw-* for the plain one). We keep the plain
                # kdump-compressed file, reassembled with `makedumpfile -R`, as
                # vmcore.kdump-zlib, and QEMU's own stream as vmcore.kdump-zlib.qemu-flat
                # for the scenarios that keep every format.
                qflat = path + ".qemu-flat"
                q.cmd("dump-guest-memory", paging=False, protocol="file:" + qflat, format=fmt)
                with open(qflat, "rb") as f:
                    run(["makedumpfile", "-R", path], stdin=f, stdout=subprocess.DEVNULL)
                if "flat" not in sc["dumps"]:
                    os.unlink(qflat)
        q.cmd("quit")
    finally:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
        if os.path.exists(sock):
            os.unlink(sock)
    return cmdline, time.time() - t


def elf_for_makedumpfile(src, dst):
    """A copy of QEMU's ELF dump that makedumpfile 1.7.2 can read.

    Folklore: QEMU 7.2 (commit "dump: Add architecture section and section string table
    support") writes two section headers at offset 64 and the program headers after them
    (e_phoff=192), and e_ehsize=8. makedumpfile 1.7.2 reads the program headers at
    sizeof(Elf64_Ehdr) regardless of e_phoff, finds section headers there and fails with
    "get_elf_info: Can't get the number of PT_LOAD". crash, drgn and gdb honour e_phoff.
    We move the program headers to offset 64 and drop the section headers in the copy.
    """
    import struct
    with open(src, "rb") as f:
        h = bytearray(f.read(4096))
    (phoff,) = struct.unpack_from("<Q", h, 32)
    (phnum,) = struct.unpack_from("<H", h, 56)
    ph = h[phoff:phoff + 56 * phnum]
    h[64:64 + len(ph)] = ph
    struct.pack_into("<Q", h, 32, 64)
    struct.pack_into("<Q", h, 40, 0)
    struct.pack_into("<H", h, 52, 64)
    struct.pack_into("<HH", h, 60, 0, 0)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)
    with open(dst, "r+b") as f:
        f.write(h)


def kdump_wait(sc, p, sock, console, disk, sdir, cmdline, t):
    """The capture kernel powers the guest off when makedumpfile is done."""
    name = sc["name"]
    try:
        p.wait(timeout=sc.get("timeout", 300) * TIMEOUT_SCALE)
    except subprocess.TimeoutExpired:
        p.kill()
        raise RuntimeError(f"{name}: capture kernel did not finish; see {console}")
    finally:
        if os.path.exists(sock):
            os.unlink(sock)
    text = open(console, "rb").read()
    if b"kmlab-init: makedumpfile rc=0" not in text:
        raise RuntimeError(f"{name}: makedumpfile failed in the capture kernel; see {console}")
    log(f"{name}: capture kernel saved the dump after {time.time() - t:.1f}s")
    with open(disk, "rb") as f:
        run(["makedumpfile", "-R", os.path.join(sdir, "vmcore.kdump")], stdin=f,
            stdout=subprocess.DEVNULL)
    os.unlink(disk)
    return cmdline, time.time() - t


def makedumpfile_variants(sc, sdir, vmlinux):
    made = {}
    # With VMCOREINFO in the ELF, makedumpfile needs nothing else (and reading vmlinux's DWARF
    # with -x costs a minute); without it, -x vmlinux supplies the symbols and offsets.
    xv = [] if sc.get("vmcoreinfo", True) else ["-x", vmlinux]
    xs = "" if sc.get("vmcoreinfo", True) else " -x vmlinux"
    if not any(x in sc["dumps"] for x in ("kdump-lzo", "kdump-d31", "flat")):
        return made
    elf = os.path.join(sdir, ".vmcore.elf.for-makedumpfile")
    elf_for_makedumpfile(os.path.join(sdir, "vmcore.elf"), elf)
    # Debian 12's makedumpfile 1.7.2 is built with zlib and lzo only (`makedumpfile -v`:
    # snappy disabled, zstd disabled), and QEMU 7.2 writes only elf, kdump-zlib and win-dmp.
    jobs = {"kdump-lzo": ["-l", "-d", "0"], "kdump-d31": ["-c", "-d", "31"]}
    for fmt, args in jobs.items():
        if fmt not in sc["dumps"]:
            continue
        dst = os.path.join(sdir, "vmcore." + fmt)
        r = subprocess.run(["makedumpfile", "--message-level", "4"] + args + xv +
                           [elf, dst + ".tmp"], capture_output=True, text=True)
        if r.returncode == 0:
            os.rename(dst + ".tmp", dst)
            made[fmt] = " ".join(["makedumpfile"] + args) + xs + " vmcore.elf vmcore." + fmt
        else:
            log(f"makedumpfile {fmt} failed: {r.stderr.strip()[-300:]}")
    if "flat" in sc["dumps"]:
        dst = os.path.join(sdir, "vmcore.flat")
        with open(dst + ".tmp", "wb") as f:
            r = subprocess.run(["makedumpfile", "--message-level", "4", "-F", "-c", "-d", "31"] +
                               xv + [elf], stdout=f, stderr=subprocess.PIPE, text=False)
        if r.returncode == 0:
            os.rename(dst + ".tmp", dst)
            made["flat"] = f"makedumpfile -F -c -d 31{xs} vmcore.elf > vmcore.flat"
        else:
            log(f"makedumpfile -F failed: {r.stderr.decode(errors='replace')[-300:]}")
    os.unlink(elf)
    return made


# ------------------------------------------------------------------------------------ console


CPU_RE = re.compile(r"CPU: (\d+) PID: (\d+) Comm: (\S+)")
RIP_RE = re.compile(r"RIP: 0010:(?:\[<[0-9a-f]+>\] )?([A-Za-z0-9_.]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
KOFF_RE = re.compile(r"Kernel Offset: (0x[0-9a-f]+|disabled)")


def console_facts(text):
    lines = text.splitlines()
    facts = {}
    panic_idx = next((i for i, l in enumerate(lines) if "Kernel panic - not syncing" in l), None)
    end = panic_idx if panic_idx is not None else len(lines)
    # the first report's CPU line (the oops), and the CPU line nearest before the panic
    first = next((m for l in lines if (m := CPU_RE.search(l))), None)
    last = None
    for l in lines[:end]:
        m = CPU_RE.search(l)
        if m:
            last = m
    if first:
        facts["oops_cpu"], facts["oops_pid"], facts["oops_comm"] = int(first[1]), int(first[2]), first[3]
    if last:
        facts["panic_cpu"], facts["panic_pid"], facts["panic_comm"] = int(last[1]), int(last[2]), last[3]
    rip = next((m for l in lines if (m := RIP_RE.search(l))), None)
    if rip:
        facts["rip_function"] = rip[1]
    if panic_idx is not None:
        facts["panic_message"] = lines[panic_idx].split("Kernel panic - not syncing: ", 1)[-1]
    k = next((m for l in lines if (m := KOFF_RE.search(l))), None)
    if k:
        facts["console_kernel_offset"] = k[1]
    return facts


def vmcoreinfo_from_elf(path):
    """VMCOREINFO as a dict, from the notes at the head of an ELF (or kdump) dump."""
    with open(path, "rb") as f:
        head = f.read(8 << 20)
    i = head.find(b"OSRELEASE=")
    if i < 0:
        return {}
    j = head.find(b"\0", i)
    info = {}
    for line in head[i:j].decode(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            info[k] = v
    return info


# ------------------------------------------------------------------------------------ oracles


def timed(cmd, out_path, timings, key, cwd=None, env=None):
    """Run cmd under /usr/bin/time -v, stdout+stderr to out_path; record wall s and peak RSS."""
    tfile = out_path + ".time"
    with open(out_path, "wb") as f:
        r = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, stdout=f,
                           stderr=subprocess.STDOUT, cwd=cwd, env=env)
    wall = rss = None
    for line in open(tfile):
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            v = line.rsplit(" ", 1)[-1]
            parts = [float(x) for x in v.split(":")]
            wall = sum(x * 60 ** (len(parts) - 1 - i) for i, x in enumerate(parts))
        elif line.startswith("Maximum resident set size"):
            rss = int(line.rsplit(" ", 1)[-1])
    os.unlink(tfile)
    timings[key] = {"command": " ".join(cmd), "wall_seconds": wall, "max_rss_kb": rss,
                    "exit_status": r.returncode}
    return r.returncode


CRASH_CMDS = [("sys", "sys"), ("bt", "bt"), ("bt-a", "bt -a"), ("log", "log"), ("ps", "ps"),
              ("mod", "mod"), ("kmem-i", "kmem -i"), ("struct-task", "task -x")]


def crash_oracle(dump, tag, odir, vmlinux, timings, per_command):
    """crash with every command in one session (outputs split by redirection)."""
    cmds = []
    for fname, c in CRASH_CMDS:
        # `task -x`: the struct task_struct of crash's current context, the panic task
        cmds.append(f"{c} > crash-{fname}{tag}.txt")
    cmds.append("quit")
    cmdfile = os.path.join(odir, f"crash{tag}.cmds")
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    timed(["crash", "-s", "--no_scroll", vmlinux, dump, "-i", cmdfile],
          os.path.join(odir, f"crash-session{tag}.txt"), timings, f"crash-session{tag}", cwd=odir)
    if per_command:
        for fname, c in CRASH_CMDS:
            cf = os.path.join(odir, f"crash-{fname}{tag}.cmd")
            with open(cf, "w") as f:
                f.write(c + " > /dev/null\nquit\n")
            timed(["crash", "-s", "--no_scroll", vmlinux, dump, "-i", cf],
                  os.path.join(odir, f".crash-{fname}{tag}.timing-run.txt"), timings,
                  f"crash-{fname}{tag}", cwd=odir)
            os.unlink(cf)
            os.unlink(os.path.join(odir, f".crash-{fname}{tag}.timing-run.txt"))


DRGN_SCRIPT = os.path.join(LAB_SRC, "oracle", "drgn_oracle.py")


def drgn_oracle(dump, tag, odir, vmlinux, ko, timings):
    # One drgn process per dump for the four outputs (drgn_oracle.py `all`): drgn loads the
    # vmlinux's DWARF once instead of four times, which was a fifth of a cold lab's oracle time.
    py = os.path.join(VENV, "bin", "python")
    log_path = os.path.join(odir, f"drgn-run{tag}.log")
    timed([py, DRGN_SCRIPT, "all", dump, vmlinux, ko, odir, tag], log_path, timings,
          f"drgn{tag}")
    status_path = os.path.join(odir, f"drgn-status{tag}.json")
    if os.path.exists(status_path):
        for key, st in json.load(open(status_path)).items():
            timings[key] = {"command": timings[f"drgn{tag}"]["command"], **st}
        os.unlink(status_path)
    else:  # the process died before writing its status (killed, out of memory)
        for what in ("bt", "ps", "dmesg", "mod"):
            out = os.path.join(odir, f"drgn-{what}{tag}.txt")
            with open(out, "a") as f:
                f.write(open(log_path, errors="replace").read())
            timings[f"drgn-{what}{tag}"] = {**timings[f"drgn{tag}"], "exit_status": 1}
    if os.path.getsize(log_path) == 0:
        os.unlink(log_path)


def addr2line_oracle(console, odir, vmlinux, ko, sysmap, timings):
    script = os.path.join(LAB_SRC, "oracle", "addr2line_oracle.py")
    timed([sys.executable, script, console, vmlinux, ko, sysmap],
          os.path.join(odir, "addr2line.txt"), timings, "addr2line")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.exists(py) and subprocess.run([py, "-c", "import drgn"],
                                             capture_output=True).returncode == 0:
        return
    log("installing drgn from PyPI into " + VENV)
    run([sys.executable, "-m", "venv", VENV])
    run([os.path.join(VENV, "bin", "pip"), "install", "-q", "drgn"])


# ------------------------------------------------------------------------------------ main


def console_only(sc, d, info):
    """Boot a scenario and keep only its console (for developing triggers): consoles/<name>.log"""
    cdir = os.path.join(d, "consoles")
    os.makedirs(cdir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d) as t:
        sc2 = dict(sc, dumps=[])
        if sc2.get("kdump"):
            sc2["dumps"] = ["kdump"]
        boot_and_dump(sc2, d, t, info["kernel_release"])
        shutil.copy(os.path.join(t, "console.log"), os.path.join(cdir, sc["name"] + ".log"))
    return True


# A report line as the kernel starts one (after the printk timestamp).
# Folklore: RCU's stall warnings carry its pr_fmt, `rcu: INFO: rcu_preempt self-detected stall`
# (kernel/rcu/rcu.h `#define pr_fmt(fmt) "rcu: " fmt`, since 5.x); a guest starved by a busy
# host (scripts/test boots the lab while cargo compiles) can print one during boot, and a later
# crash's dump then holds a CPU that was stalled (the 6.12 null_deref of a cold CI run, issue 14).
REPORT_RE = re.compile(r"\] (?:rcu: )?(Oops: |BUG: |WARNING: |general protection fault|"
                       r"kernel BUG at |Kernel panic - not syncing|divide error|INFO: |"
                       r"watchdog: )")
TRIGGER_MARK = "kmlab: triggering "
BOOT_ATTEMPTS = 3
# A scenario's `timeout` is what an idle 2-core machine needs, times this: a guest under TCG on a
# machine that is also compiling (scripts/test builds the lab while cargo runs) boots 5-10x
# slower, and a timeout is only a guard against a guest that never crashes.
TIMEOUT_SCALE = float(os.environ.get("KMORTEM_LAB_TIMEOUT_SCALE", "4"))


def crashed_before_trigger(console):
    """The first report line when the guest reported a crash before kmlab's trigger ran (or on
    a guest that should not crash at all), else None.

    Folklore: 6.12 under QEMU TCG with two vCPUs sometimes oopses at boot with `Oops: int3` in
    `sched_clock_idle_wakeup_event` (right after `sched_clock: Marking stable`: a static key
    being patched with text_poke_bp's int3 while the other vCPU runs it), seen once in 29 boots
    on the first 6.12 lab build. With oops=panic that boot's dump is not the scenario's crash:
    it is thrown away and the boot retried. crates/lab/tests/titles.rs checks every console's
    first report is the scenario's."""
    text = open(console, "rb").read().decode(errors="replace")
    trig = text.find(TRIGGER_MARK)
    for m in REPORT_RE.finditer(text):
        if trig < 0 or m.start() < trig:
            line_end = text.find("\n", m.start())
            return text[m.start() + 2:line_end if line_end >= 0 else None][:120].rstrip()
        break
    return None


def do_scenario(sc, d, info, force):
    rel = info["kernel_release"]
    name = sc["name"]
    _TLS.prefix = f"[{info['name']}] "
    sdir = os.path.join(d, "scenarios", name)
    mod_hash, initramfs_hash = build_of(info, sc)
    h = sha(json.dumps(sc, sort_keys=True), initramfs_hash, LAB_FORMAT,
            ",".join(info["oracles"]),
            file_sha(DRGN_SCRIPT), file_sha(os.path.join(LAB_SRC, "oracle", "addr2line_oracle.py")),
            *([file_sha(os.path.join(LAB_SRC, "initramfs", sc["overlay"]["script"]))]
              if sc.get("overlay") else []))
    stamp = os.path.join(sdir, ".stamp")
    if not force and stamp_ok(stamp, h) and os.path.exists(os.path.join(sdir, "meta.json")):
        early = crashed_before_trigger(os.path.join(sdir, "console.log"))
        if not early:
            return False
        log(f"{name}: the cached boot crashed before the trigger ({early!r}); rebuilding")
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(os.path.join(sdir, "oracle"))
    root = os.path.join(d, "root")
    vmlinux = os.path.join(root, f"usr/lib/debug/boot/vmlinux-{rel}")
    ko = os.path.join(d, "module", mod_hash, "kmlab.ko")
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        cmdline, secs = boot_and_dump(sc, d, sdir, rel)
        early = crashed_before_trigger(os.path.join(sdir, "console.log"))
        if not early:
            break
        log(f"{name}: the guest crashed before the trigger ({early!r}); boot {attempt} of "
            f"{BOOT_ATTEMPTS} thrown away")
        keep_console = os.path.join(d, "consoles", f"{name}.early-crash-{attempt}.log")
        os.makedirs(os.path.dirname(keep_console), exist_ok=True)
        shutil.move(os.path.join(sdir, "console.log"), keep_console)
        for f in os.listdir(sdir):
            if f.startswith("vmcore.") or f.startswith(".vmcore"):
                os.unlink(os.path.join(sdir, f))
    else:
        raise RuntimeError(f"{name}: the guest crashed before the trigger on every boot "
                           f"({early!r}); consoles kept in {os.path.join(d, 'consoles')}")
    made = makedumpfile_variants(sc, sdir, vmlinux)
    keep = set(sc["dumps"])
    if "elf" not in keep and os.path.exists(os.path.join(sdir, "vmcore.elf")):
        os.unlink(os.path.join(sdir, "vmcore.elf"))
    text = open(os.path.join(sdir, "console.log"), "rb").read().decode(errors="replace")
    facts = console_facts(text)
    dumps = []
    made.setdefault("elf", "qemu dump-guest-memory paging=false format=elf")
    made.setdefault("kdump-zlib", "qemu dump-guest-memory paging=false format=kdump-zlib "
                    "(flattened) | makedumpfile -R vmcore.kdump-zlib")
    made["kdump-zlib.qemu-flat"] = "qemu dump-guest-memory paging=false format=kdump-zlib"
    made["kdump"] = ("kdump: kexec -p capture kernel ran `makedumpfile -F -c -d 31 /proc/vmcore "
                     "> /dev/vda`; `makedumpfile -R vmcore.kdump < disk` on the host")
    for fmt in ["elf", "kdump-zlib", "kdump-lzo", "kdump-d31", "flat", "kdump-zlib.qemu-flat",
                "kdump"]:
        p = os.path.join(sdir, "vmcore." + fmt)
        if os.path.exists(p):
            container = {"elf": "elf", "flat": "flattened", "kdump-zlib.qemu-flat": "flattened"}
            dumps.append({"file": "vmcore." + fmt, "format": fmt,
                          "container": container.get(fmt, "kdump-compressed"),
                          "compression": {"elf": None, "kdump-lzo": "lzo"}.get(fmt, "zlib"),
                          "dump_level": 31 if fmt in ("kdump-d31", "flat", "kdump") else 0,
                          "made_by": made[fmt], "bytes": os.path.getsize(p)})
    vmci = {}
    for dd in dumps:
        if dd["format"] in ("elf", "kdump-zlib", "kdump"):
            vmci = vmcoreinfo_from_elf(os.path.join(sdir, dd["file"]))
            if vmci:
                break
    koff = vmci.get("KERNELOFFSET")
    if koff is not None:
        koff = "0x" + koff.lower()
    elif facts.get("console_kernel_offset", "").startswith("0x"):
        koff = facts["console_kernel_offset"]
    flags = sc.get("flags", [])
    meta = {
        "name": name,
        "trigger": sc.get("trigger", name),
        "kind": sc["kind"],
        "expected_title": sc["title"],
        "panic_function": sc["func"],
        "kernel_name": info["name"],
        "kernel_release": rel,
        "kernel_version": info["kernel_version"],
        "oracle_tools": info["oracles"],
        "vmlinux": vmlinux,
        "modules_debug_dir": os.path.join(root, f"usr/lib/debug/lib/modules/{rel}"),
        "kmlab_ko": ko,
        "kmlab_source": os.path.join(d, "module", mod_hash, "kmlab.c"),
        # the optimisation level kmlab.ko was built at (-O2: the kernel's own)
        "opt": sc.get("opt", "-O2"),
        # reports in the console: more than one when a benign one comes before the crash
        "expected_reports": sc.get("reports", 1),
        "system_map": os.path.join(root, f"boot/System.map-{rel}"),
        "cmdline": cmdline,
        "kaslr": "nokaslr" not in flags,
        "kaslr_offset": koff,
        "vmcoreinfo_in_dump": bool(vmci),
        "variant": {f: f in flags for f in ("nokaslr", "la57", "no_vmcoreinfo", "live",
                                            "limp_on", "kdump")},
        "dumps": dumps,
        "boot_to_dump_seconds": round(secs, 1),
    }
    for k in ("panic_cpu", "panic_pid", "panic_comm", "oops_cpu", "oops_pid", "oops_comm",
              "rip_function", "panic_message"):
        meta[k] = facts.get(k)
    if "la57" in flags:
        meta["la57_in_guest"] = vmci.get("NUMBER(pgtable_l5_enabled)") == "1"
    # oracles
    odir = os.path.join(sdir, "oracle")
    timings = {}
    oracle_dumps = [dd for dd in dumps if dd["format"] in ("elf", "kdump-zlib", "kdump-lzo",
                                                            "kdump-d31", "kdump")]
    if sc["dumps"] != FULL:
        oracle_dumps = oracle_dumps[:1]
    for i, dd in enumerate(oracle_dumps):
        tag = "" if i == 0 else "." + dd["format"]
        log(f"{name}: oracles on {dd['file']}")
        if "crash" in info["oracles"] and "crash" in sc.get("oracles", ["crash"]):
            crash_oracle(os.path.join(sdir, dd["file"]), tag, odir, vmlinux, timings,
                         per_command=(i == 0 and name == "null_deref"))
        drgn_oracle(os.path.join(sdir, dd["file"]), tag, odir, vmlinux, ko, timings)
    addr2line_oracle(os.path.join(sdir, "console.log"), odir, vmlinux, ko, meta["system_map"],
                     timings)
    meta["oracles"] = {"primary_dump": oracle_dumps[0]["file"] if oracle_dumps else None,
                       "files": sorted(os.listdir(odir))}
    json.dump(timings, open(os.path.join(odir, "timings.json"), "w"), indent=2)
    json.dump(meta, open(os.path.join(sdir, "meta.json"), "w"), indent=2)
    write_stamp(stamp, h)
    log(f"{name}: done ({', '.join(x['file'] for x in dumps)})")
    return True


def build_of(info, sc):
    """(module hash, initramfs hash) a scenario boots with: the -O2 build, or its `opt` one."""
    opt = sc.get("opt")
    if not opt:
        return info["module_hash"], info["initramfs_hash"]
    return info["opt_builds"][opt]


def prepare_opt_builds(k, d, info, opts):
    """kmlab.ko and an initramfs for each optimisation level some selected scenario needs."""
    info.setdefault("opt_builds", {})
    for opt in sorted(opts):
        mh = build_module(k["release"], d, opt)
        info["opt_builds"][opt] = (mh, build_initramfs(k["release"], d, mh, opt))


def prepare_kernel(k):
    """Everything a kernel's scenarios share: packages, root/, kmlab.ko, the initramfs. Holds the
    kernel directory's lock until the process ends (tests of several crates may start lab/build
    together: the others wait, then find everything built)."""
    import fcntl
    d = lab_dir(k)
    os.makedirs(d, exist_ok=True)
    lockf = open(os.path.join(d, ".lock"), "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"{k['name']}: another lab/build is running on {d}; waiting for it")
        fcntl.flock(lockf, fcntl.LOCK_EX)
    LOCKS.append(lockf)
    log(f"kernel {k['name']}: {k['release']} ({k['version']}); lab dir {d}")
    info = fetch_kernel(k, d)
    info["module_hash"] = build_module(k["release"], d)
    info["initramfs_hash"] = build_initramfs(k["release"], d, info["module_hash"])
    return d, info


LOCKS = []


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kernel", help="comma-separated kernel names from lab/kernels.toml "
                    "(default: all; also KMORTEM_LAB_KERNELS)")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--force", action="store_true", help="rebuild the selected scenarios")
    ap.add_argument("--reverse", action="store_true", help="build scenarios in reverse order")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--kernels", action="store_true",
                    help="list the pinned kernels (name, release, version, lab directory)")
    ap.add_argument("--markdown", action="store_true", help="the README's scenario table")
    ap.add_argument("--console-only", action="store_true",
                    help="boot the selected scenarios, keep consoles/<name>.log only")
    ap.add_argument("--print-dir", action="store_true",
                    help="print the lab directory of the first selected kernel and exit")
    a = ap.parse_args()
    if a.list:
        for sc in SCENARIOS:
            print(f"{sc['name']:28} {sc['kind'] or '-':26} {sc['title'] or '-'}")
        return
    if a.markdown:
        print("| scenario | trigger | kind | title | dumps | extra command line |")
        print("|---|---|---|---|---|---|")
        for sc in SCENARIOS:
            print(f"| `{sc['name']}` | `{sc.get('trigger', sc['name'])}` | {sc['kind'] or '-'} | "
                  f"{'`' + sc['title'] + '`' if sc['title'] else '(no oops)'} | "
                  f"{', '.join(sc['dumps'])} | {sc.get('extra', '')} |")
        return
    kernels = load_kernels(a.kernel)
    if a.print_dir:
        print(lab_dir(kernels[0]))
        return
    if a.kernels:
        for k in kernels:
            print(f"{k['name']:6} {k['release']:30} {k['version']:22} {lab_dir(k)}")
        return
    prepared = [(k, *prepare_kernel(k)) for k in kernels]
    ensure_venv()
    only = set(a.only.split(",")) if a.only else None
    todo = [(k, d, info, sc) for k, d, info in prepared for sc in SCENARIOS
            if not only or sc["name"] in only]
    for k, d, info in prepared:
        prepare_opt_builds(k, d, info, {sc["opt"] for kk, _, _, sc in todo
                                        if kk is k and sc.get("opt")})
    if a.reverse:
        todo.reverse()
    jobs = int(os.environ.get("KMORTEM_LAB_JOBS", "2"))
    import concurrent.futures
    built = {k["name"]: 0 for k in kernels}
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {}
        for k, d, info, sc in todo:
            if a.console_only:
                fut = ex.submit(console_only, sc, d, info)
            else:
                fut = ex.submit(do_scenario, sc, d, info, a.force)
            futs[fut] = (k["name"], sc["name"])
        for fut in concurrent.futures.as_completed(futs):
            kname, sname = futs[fut]
            try:
                built[kname] += bool(fut.result())
            except Exception as e:  # noqa: BLE001 - report every failed scenario, then fail
                log(f"[{kname}] {sname}: FAILED: {e}")
                failed.append(f"{sname} ({kname})")
    if failed:
        sys.exit(f"lab: {len(failed)} scenario(s) failed: {', '.join(failed)}")
    for k, d, info in prepared:
        summary = {"kernel": info, "scenarios": [sc["name"] for sc in SCENARIOS],
                   "last_run_seconds": round(time.time() - T0),
                   "last_run_built": built[k["name"]]}
        with open(os.path.join(d, "lab.json.tmp"), "w") as f:
            json.dump(summary, f, indent=2)
        os.rename(os.path.join(d, "lab.json.tmp"), os.path.join(d, "lab.json"))
        log(f"[{k['name']}] lab ready in {d} ({built[k['name']]} scenario(s) built)")
    log(f"done in {time.time() - T0:.0f}s")


if __name__ == "__main__":
    main()

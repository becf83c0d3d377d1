#!/usr/bin/env python3
"""Write a synthetic fleet log: ordinary kernel messages with crash reports sprinkled through it.

Usage: gen_fleetlog.py OUT SIZE_MB [DENSITY]
DENSITY `sparse` (default): about one report line in a thousand (a report per ~30000 lines).
DENSITY `dense`: a busy, over-committed fleet: a crash report about every 700 lines and a memory
cgroup OOM-kill line about every 40 lines."""
import os, random, sys

out, size_mb = sys.argv[1], int(sys.argv[2])
density = sys.argv[3] if len(sys.argv) > 3 else "sparse"
report_every, oom_every = {"sparse": (30000, 0), "dense": (700, 40)}[density]
here = os.path.dirname(os.path.abspath(__file__))
golden = os.path.join(here, "..", "crates", "oops", "tests", "golden")
random.seed(42)

ordinary = [
    "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
    "systemd[1]: Started Session %d of User root.",
    "audit: type=1400 audit(1700000000.%03d:%d): apparmor=\"STATUS\" operation=\"profile_load\" name=\"nvidia_modprobe\"",
    "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none.",
    "IPv6: ADDRCONF(NETDEV_CHANGE): veth%d: link becomes ready",
    "br0: port %d(veth%d) entered forwarding state",
    "TCP: request_sock_TCP: Possible SYN flooding on port %d. Sending cookies.",
    "nvme nvme0: I/O %d QID 3 timeout, completion polled",
    "perf: interrupt took too long (%d > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
    "kauditd_printk_skb: %d callbacks suppressed",
    "usb 1-1: new high-speed USB device number %d using xhci_hcd",
    "device veth%d entered promiscuous mode",
    "overlayfs: upperdir is in-use as upperdir/workdir of another mount, accessing files from both mounts will result in undefined behavior.",
    "cgroup: fork rejected by pids controller in /kubepods.slice/kubepods-burstable.slice/pod%d",
]
comms = ["java", "python3", "node", "postgres", "envoy", "stress", "ruby", "php-fpm", "mysqld"]
reports = []
for name in sorted(os.listdir(golden)):
    if name.endswith(".log") and "kmsg" not in name and "crlf" not in name:
        with open(os.path.join(golden, name), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        # Strip the stamps; the generator writes its own.
        body = []
        for l in lines:
            if l.startswith("[") and "] " in l:
                l = l.split("] ", 1)[1] if not l[1:2].isalpha() else l.split("] ", 1)[1]
                if l.startswith("[") and "] " in l and l[1] in " TC":
                    l = l.split("] ", 1)[1]
            body.append(l)
        reports.append(body)

target = size_mb * 1024 * 1024
written = 0
t = 1.0
with open(out, "w") as f:
    buf = []
    n = 0
    while written < target:
        if oom_every and random.random() < 1.0 / oom_every:
            s = "[%12.6f] Memory cgroup out of memory: Killed process %d (%s) total-vm:%dkB, anon-rss:%dkB, file-rss:%dkB, shmem-rss:0kB, UID:%d pgtables:%dkB oom_score_adj:%d\n" % (
                t, random.randrange(100, 4000000), random.choice(comms), random.randrange(10000, 9000000),
                random.randrange(1000, 8000000), random.randrange(0, 90000), random.choice((0, 1000, 65534)),
                random.randrange(100, 20000), random.choice((-997, 0, 937, 999)))
            t += 0.000731
            buf.append(s)
            written += len(s)
            continue
        # ~30-line reports: one per `report_every` ordinary lines.
        if random.random() < 1.0 / report_every:
            for l in random.choice(reports):
                s = "[%12.6f] %s\n" % (t, l)
                buf.append(s)
                written += len(s)
            continue
        tmpl = random.choice(ordinary)
        k = tmpl.count("%")
        msg = tmpl % tuple(random.randrange(1, 60000) for _ in range(k)) if k else tmpl
        s = "[%12.6f] %s\n" % (t, msg)
        t += 0.000731
        buf.append(s)
        written += len(s)
        n += 1
        if len(buf) >= 20000:
            f.write("".join(buf))
            buf.clear()
    f.write("".join(buf))

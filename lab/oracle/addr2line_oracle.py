#!/usr/bin/env python3
"""addr2line oracle: `addr2line_oracle.py console.log VMLINUX KMLAB_KO SYSTEM_MAP`.

For every `func+0xOFF/0xSIZE [module]` in the console (RIP lines and call-trace frames, reliable
or `? `), resolve it the way a human would with binutils, without any KASLR arithmetic:
  - vmlinux frames: the link-time address of `func` (from `nm -S vmlinux`, choosing the symbol
    whose size equals SIZE when a static name is defined more than once) plus OFF, then
    `addr2line -fi -e vmlinux ADDR`. The runtime address is that plus the KASLR offset;
  - kmlab frames: the section and section-relative value of `func` in kmlab.ko (an ET_REL
    file, from `readelf -sW`), plus OFF, then `addr2line -fi -j SECTION -e kmlab.ko OFFSET`;
  - frames of other modules are listed as unresolved.
Output: one block per distinct frame: `== func+0xOFF/0xSIZE [module] -> file ADDR`, then
addr2line's lines (function, file:line, and inlined-by pairs).
"""
import re
import subprocess
import sys

FRAME_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \[(\w+)\])?")


def nm_sizes(path):
    syms = {}
    out = subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.setdefault(parts[3], []).append((int(parts[0], 16), int(parts[1], 16)))
    return syms


def ko_symbols(path):
    secs = {}
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True,
                         check=True).stdout
    for m in re.finditer(r"\[\s*(\d+)\]\s+(\S+)", out):
        secs[m.group(1)] = m.group(2)
    syms = {}
    out = subprocess.run(["readelf", "-sW", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 8 and p[3] == "FUNC" and p[6].isdigit():
            syms.setdefault(p[7], []).append((secs.get(p[6], "?"), int(p[1], 16), int(p[2])))
    return syms


def main():
    console, vmlinux, ko, _sysmap = sys.argv[1:5]
    text = open(console, "rb").read().decode(errors="replace")
    frames = []
    seen = set()
    for m in FRAME_RE.finditer(text):
        key = m.group(0)
        if key not in seen:
            seen.add(key)
            frames.append((key, m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
    vsyms = nm_sizes(vmlinux)
    ksyms = ko_symbols(ko)
    plan = []  # (key, header, group, addr)
    for key, func, off, size, mod in frames:
        if mod is None:
            cands = vsyms.get(func, [])
            pick = [a for a, s in cands if s == size] or [a for a, _ in cands]
            if not pick:
                plan.append((key, f"== {key} -> unresolved (no symbol {func} in vmlinux)", None, 0))
                continue
            note = f" (ambiguous: {len(pick)} symbols)" if len(pick) > 1 else ""
            addr = pick[0] + off
            plan.append((key, f"== {key} -> vmlinux 0x{addr:x}{note}", (vmlinux, None), addr))
        elif mod == "kmlab":
            cands = ksyms.get(func, [])
            pick = [c for c in cands if c[2] == size] or cands
            if not pick:
                plan.append((key, f"== {key} -> unresolved (no symbol {func} in kmlab.ko)", None, 0))
                continue
            sec, val, _ = pick[0]
            addr = val + off
            plan.append((key, f"== {key} -> kmlab.ko {sec}+0x{addr:x}", (ko, sec), addr))
        else:
            plan.append((key, f"== {key} -> unresolved (module {mod} not resolved by the lab)",
                         None, 0))
    # one addr2line per (binary, section); `-a` prints each address before its lines
    results = {}
    for group in {g for _, _, g, _ in plan if g}:
        path, sec = group
        addrs = [a for _, _, g, a in plan if g == group]
        cmd = ["addr2line", "-a", "-fi", "-e", path] + (["-j", sec] if sec else [])
        r = subprocess.run(cmd + [f"0x{a:x}" for a in addrs], capture_output=True, text=True)
        cur = None
        for line in r.stdout.splitlines():
            if re.fullmatch(r"0x[0-9a-f]+", line):
                cur = (group, int(line, 16))
                results.setdefault(cur, [])
            elif cur:
                results[cur].append(line)
    for key, header, group, addr in plan:
        print(header)
        for line in results.get((group, addr), []):
            print(line)

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from real inputs: the crash lab's consoles, dumps and vmlinux
sections (every pinned kernel), the bundled examples, and ../shared's corpora. The corpus
directory is not tracked (.gitignore); nothing of ../shared is copied into the repository.

usage: fuzz/seed.py [TARGET ...]      (default: every target in fuzz/Cargo.toml)
Idempotent: a target whose corpus already has files is left alone (delete it to reseed).
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)
SHARED = os.path.join(os.path.dirname(REPO), "shared")
CORPUS = os.path.join(FUZZ, "corpus")
MAX = 256 << 10  # bytes per seed: libFuzzer mutates small inputs faster


def lab_dirs():
    out = subprocess.run([os.path.join(REPO, "lab", "build"), "--kernels"], capture_output=True,
                         text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()
            and os.path.isdir(line.split()[-1])]


def scenarios():
    for d in lab_dirs():
        for s in sorted(glob.glob(os.path.join(d, "scenarios", "*", "meta.json"))):
            yield os.path.dirname(s), json.load(open(s))


def consoles():
    out = [open(os.path.join(s, "console.log"), "rb").read() for s, _ in scenarios()]
    out += [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(REPO, "examples", "*.log")))]
    return out


def report_lines(text, pat):
    return [l for l in text.splitlines() if re.search(pat, l)]


def elf_sections(path, names):
    """{name: bytes} of the named sections of an ELF file (64-bit little-endian)."""
    with open(path, "rb") as f:
        h = f.read(64)
        shoff, = struct.unpack_from("<Q", h, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", h, 58)
        f.seek(shoff)
        sh = f.read(shentsize * shnum)
        hdrs = [struct.unpack_from("<IIQQQQIIQQ", sh, i * shentsize) for i in range(shnum)]
        f.seek(hdrs[shstrndx][4])
        strtab = f.read(hdrs[shstrndx][5])
        out = {}
        for name_off, _, _, _, off, size, *_ in hdrs:
            name = strtab[name_off:strtab.index(b"\0", name_off)].decode()
            if name in names:
                f.seek(off)
                out[name] = f.read(min(size, 8 << 20))
        return out


def elf_notes(path):
    """The PT_NOTE segments of an ELF dump."""
    with open(path, "rb") as f:
        h = f.read(64)
        phoff, = struct.unpack_from("<Q", h, 32)
        phentsize, phnum = struct.unpack_from("<HH", h, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
        out = []
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz, *_ = struct.unpack_from("<IIQQQQQQ", ph,
                                                                           i * phentsize)
            if p_type == 4:
                f.seek(p_offset)
                out.append(f.read(min(p_filesz, MAX)))
        return out


def symbol_bytes(vmlinux, sysmap, name, size, known=None):
    """`size` bytes of vmlinux at the link-time address of `name` (from `known`, else
    System.map)."""
    addr = (known or {}).get(name)
    for line in open(sysmap) if addr is None else ():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            addr = int(parts[0], 16)
            break
    if addr is None:
        return b""
    with open(vmlinux, "rb") as f:
        h = f.read(64)
        shoff, = struct.unpack_from("<Q", h, 40)
        shentsize, shnum = struct.unpack_from("<HH", h, 58)
        f.seek(shoff)
        sh = f.read(shentsize * shnum)
        for i in range(shnum):
            _, sh_type, _, sh_addr, sh_off, sh_size, *_ = struct.unpack_from("<IIQQQQIIQQ", sh,
                                                                             i * shentsize)
            if sh_type != 8 and sh_addr <= addr < sh_addr + sh_size:  # not SHT_NOBITS
                f.seek(sh_off + addr - sh_addr)
                return f.read(min(size, sh_addr + sh_size - addr))
    return b""


def head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


def seeds(target):
    """Yields (name, bytes) seeds for one fuzz target."""
    cons = consoles()
    if target in ("oops", "netconsole", "explain_messages", "fixes_crash_text", "frame_token",
                  "agent_boot_file", "line"):
        for i, c in enumerate(cons):
            data = c[-MAX:]
            yield f"console-{i}", (b"\0" + data) if target == "agent_boot_file" else data
        for p in sorted(glob.glob(os.path.join(SHARED, "corpus", "syzkaller", "report", "*")))[:200]:
            yield "syz-" + os.path.basename(p), head(p, MAX)
    elif target == "code_line":
        for i, c in enumerate(cons):
            for j, l in enumerate(report_lines(c.decode(errors="replace"), r"Code: ")):
                yield f"code-{i}-{j}", l.encode()
    elif target == "btf":
        for d in lab_dirs():
            rel = os.path.basename(d)
            ko = os.path.join(d, "module", "kmlab.ko")
            if os.path.exists(ko):
                yield f"kmlab-{rel}", elf_sections(ko, {".BTF"}).get(".BTF", b"")
            vml = os.path.join(d, "root", "usr", "lib", "debug", "boot", f"vmlinux-{rel}")
            if os.path.exists(vml):
                yield f"vmlinux-{rel}", elf_sections(vml, {".BTF"}).get(".BTF", b"")
    elif target in ("dump_open", "kdump_header", "elf_notes", "vmcoreinfo"):
        for s, meta in scenarios():
            for dd in meta["dumps"]:
                p = os.path.join(s, dd["file"])
                tag = f"{meta.get('kernel_name', '')}-{meta['name']}-{dd['format']}"
                if target == "kdump_header" and dd["container"] == "kdump-compressed":
                    yield tag, head(p, 64 << 10)[8:]
                elif target == "dump_open":
                    yield tag, head(p, MAX)
                elif dd["container"] == "elf" and target in ("elf_notes", "vmcoreinfo"):
                    for k, n in enumerate(elf_notes(p)):
                        if target == "elf_notes":
                            yield f"{tag}-{k}", n
                        elif b"OSRELEASE=" in n:
                            i = n.index(b"OSRELEASE=")
                            j = n.find(b"\0", i)
                            yield f"{tag}-{k}", n[i:j if j >= 0 else None]
    elif target == "dump_damaged":
        # Real lab vmcores damaged as issue 25's hostile inputs were: the head of the file (a
        # dump cut short), and that head with its kdump bitmap flipped, its notes renamed, a
        # PT_LOAD moved onto another, or bytes flipped every 4 KiB.
        per_kernel = {}
        for s, meta in scenarios():
            if meta["name"] not in ("null_deref", "bug", "many_tasks", "null_deref_la57"):
                continue
            kernel = meta.get("kernel_name", "")
            if per_kernel.get(kernel, 0) >= 12:
                continue
            per_kernel[kernel] = per_kernel.get(kernel, 0) + len(meta["dumps"])
            for dd in meta["dumps"]:
                p = os.path.join(s, dd["file"])
                tag = f"{meta.get('kernel_name', '')}-{meta['name']}-{dd['format']}"
                b = bytearray(head(p, 1 << 20))
                yield tag + "-cut", bytes(b)
                if b[:8] == b"KDUMP   ":
                    bs, sub, blocks = struct.unpack_from("<iii", b, 428)
                    if 512 <= bs <= (1 << 20) and blocks > 0:
                        bm = (1 + sub) * bs
                        half = blocks * bs // 2
                        for name, byte in (("bitmap-all", 0xff), ("bitmap-none", 0)):
                            v = bytearray(b)
                            v[bm + half:min(len(v), bm + 2 * half)] = bytes([byte]) * max(0, min(len(v), bm + 2 * half) - (bm + half))
                            yield f"{tag}-{name}", bytes(v)
                    v = bytearray(b)
                    for i in range(len(v)):
                        if v[i:i + 4] == b"CORE":
                            v[i:i + 4] = b"XORE"
                    yield tag + "-nonotes", bytes(v)
                elif b[:4] == b"\x7fELF":
                    phoff, = struct.unpack_from("<Q", b, 32)
                    phnum, = struct.unpack_from("<H", b, 56)
                    loads = [phoff + i * 56 for i in range(phnum)
                             if struct.unpack_from("<I", b, phoff + i * 56)[0] == 1]
                    if len(loads) >= 2:
                        v = bytearray(b)
                        v[loads[-1] + 16:loads[-1] + 32] = v[loads[0] + 16:loads[0] + 32]
                        yield tag + "-overlap", bytes(v)
                v = bytearray(b)
                for i in range(4096, len(v), 4096):
                    v[i] ^= 0x5a
                yield tag + "-flipped", bytes(v)
    elif target == "symbol_map":
        for d in lab_dirs():
            for p in glob.glob(os.path.join(d, "root", "boot", "System.map-*")):
                yield "sysmap-" + os.path.basename(d), head(p, MAX)
    elif target == "orc":
        for d in lab_dirs():
            for p in glob.glob(os.path.join(d, "root", "usr", "lib", "debug", "boot", "vmlinux-*")):
                secs = elf_sections(p, {".orc_unwind", ".orc_unwind_ip"})
                ip, orc = secs.get(".orc_unwind_ip", b""), secs.get(".orc_unwind", b"")
                yield "orc-" + os.path.basename(d), bytes([63]) + ip[:4 * 63] + orc[:6 * 63]
    elif target == "kallsyms":
        # The target's input: u16 symbol count, a split byte, then the compressed names and,
        # after the split, the token index (512 bytes) and the token table, as the kernel's
        # kallsyms_names / kallsyms_token_index / kallsyms_token_table hold them.
        for d in lab_dirs():
            rel = os.path.basename(d)
            vml = os.path.join(d, "root", "usr", "lib", "debug", "boot", f"vmlinux-{rel}")
            smap = os.path.join(d, "root", "boot", f"System.map-{rel}")
            if not (os.path.exists(vml) and os.path.exists(smap)):
                continue
            # System.map lacks the kallsyms tables; VMCOREINFO names them (SYMBOL(...)) at
            # their runtime addresses, KERNELOFFSET above the link-time ones.
            syms = {}
            for sdir, meta in scenarios():
                if meta["name"] == "null_deref" and sdir.startswith(d):
                    text = head(os.path.join(sdir, meta["dumps"][0]["file"]), 8 << 20)
                    for m in re.finditer(rb"SYMBOL\((kallsyms_\w+)\)=([0-9a-f]+)", text):
                        syms[m.group(1).decode()] = int(m.group(2), 16)
                    off = re.search(rb"KERNELOFFSET=([0-9a-f]+)", text)
                    koff = int(off.group(1), 16) if off else 0
                    syms = {k: v - koff for k, v in syms.items()}
            names = symbol_bytes(vml, smap, "kallsyms_names", 4096, syms)
            index = symbol_bytes(vml, smap, "kallsyms_token_index", 512, syms)
            table = symbol_bytes(vml, smap, "kallsyms_token_table", 4096, syms)
            if not (names and index and table):
                continue
            n, o = 0, 0
            while o < len(names) and n < 200:
                o += 1 + names[o]
                n += 1
            body = names[:o] + index + table
            split = min(255, (o * 256 + len(body) + 2) // (len(body) + 3))
            yield "kallsyms-" + rel, struct.pack("<HB", n, split) + body
    elif target in ("fixes_cve_json", "fixes_dyad"):
        pat = "*.json" if target == "fixes_cve_json" else "*.dyad"
        for p in sorted(glob.glob(os.path.join(SHARED, "data", "kernel-vulns", "**", pat),
                               recursive=True))[:300]:
            yield os.path.basename(p), head(p, MAX)
    elif target == "server_time":
        for t in ("2026-11-21T18:09:11Z", "2026-11-21", "1h", "30m", "7d", "now", "1732212551"):
            yield t.replace(":", "_"), t.encode()


def targets():
    toml = open(os.path.join(FUZZ, "Cargo.toml")).read()
    return re.findall(r'\[\[bin\]\]\s*name = "([^"]+)"', toml)


def main():
    want = sys.argv[1:] or targets()
    for t in want:
        d = os.path.join(CORPUS, t)
        if os.path.isdir(d) and os.listdir(d):
            print(f"fuzz/seed: {t}: {len(os.listdir(d))} files already, left alone")
            continue
        os.makedirs(d, exist_ok=True)
        n = 0
        for name, data in seeds(t):
            if not data:
                continue
            with open(os.path.join(d, re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:100]), "wb") as f:
                f.write(data)
            n += 1
        print(f"fuzz/seed: {t}: {n} seeds")


if __name__ == "__main__":
    main()

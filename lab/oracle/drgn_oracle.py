#!/usr/bin/env python3
"""drgn oracle for the crash lab: `drgn_oracle.py bt|ps|dmesg|mod VMCORE VMLINUX KMLAB_KO`, or
`drgn_oracle.py all VMCORE VMLINUX KMLAB_KO OUT_DIR TAG`: the four in one process (drgn reads the
vmlinux's debug info once, not four times), each into OUT_DIR/drgn-WHAT{TAG}.txt, with each one's
exit status and seconds in OUT_DIR/drgn-status{TAG}.json.

bt:    the crashed thread's stack trace, each frame with its function, file:line and the
       values of its local variables and parameters (what `explain` must match);
bt-a:  (part of bt) nothing else;
ps:    the task list: pid, state, cpu, comm;
dmesg: the kernel log from the dump;
mod:   the loaded modules: name, struct module address, text base and size (crash's `mod`).
Runs with the drgn from PyPI (in ~/.cache/kmortem/venv), which reads ELF and kdump files.
"""
import contextlib
import io
import json
import sys
import time
import traceback

import drgn
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_dmesg
from drgn.helpers.linux.sched import task_cpu, task_state_to_char


def load(vmcore, vmlinux, ko):
    # Folklore: libkdumpfile cannot tell the architecture of a kdump file written by QEMU
    # ("kdump_get_string_attr(KDUMP_ATTR_ARCH_NAME): Key has no value"), so name the platform.
    prog = drgn.Program(drgn.host_platform)
    prog.set_core_dump(vmcore)
    try:
        prog.load_debug_info([vmlinux, ko], default=False)
    except drgn.MissingDebugInfoError as e:
        # Reported, not fatal: drgn names what it could not find (other modules).
        print(f"# drgn: {str(e).splitlines()[0]}", file=sys.stderr)
    return prog


def all_in_one(vmcore, vmlinux, ko, out_dir, tag):
    """Every command on one loaded program; a failing one is recorded, the others still run."""
    status = {}
    head = io.StringIO()
    t0 = time.monotonic()
    try:
        with contextlib.redirect_stderr(head):
            prog = load(vmcore, vmlinux, ko)
        load_error = None
    except Exception:  # noqa: BLE001 - every output file says why drgn could not start
        prog, load_error = None, traceback.format_exc()
    load_seconds = time.monotonic() - t0
    for what in COMMANDS:
        t = time.monotonic()
        with open(f"{out_dir}/drgn-{what}{tag}.txt", "w") as f:
            f.write(head.getvalue())
            if load_error:
                f.write(load_error)
                code = 1
            else:
                try:
                    with contextlib.redirect_stdout(f):
                        COMMANDS[what](prog)
                    code = 0
                except Exception:  # noqa: BLE001
                    f.flush()
                    f.write(traceback.format_exc())
                    code = 1
        status[f"drgn-{what}{tag}"] = {"exit_status": code,
                                       "wall_seconds": round(time.monotonic() - t + load_seconds, 2)}
        load_seconds = 0.0
    with open(f"{out_dir}/drgn-status{tag}.json", "w") as f:
        json.dump(status, f, indent=2)


def fmt_value(obj):
    try:
        if obj.absent_:
            return "<optimized out>"
        t = obj.type_
        kind = drgn.TypeKind
        u = t.unaliased()
        if u.kind == kind.POINTER:
            return f"({t.type_name()})0x{obj.value_():x}"
        if u.kind in (kind.INT, kind.BOOL, kind.ENUM, kind.FLOAT):
            return obj.format_(type_name=False)
        return obj.format_(type_name=False, members_same_line=True)[:400]
    except drgn.FaultError as e:
        return f"<fault: {e}>"
    except Exception as e:  # noqa: BLE001 - an oracle records what it could not do
        return f"<error: {e}>"


def cmd_bt(prog):
    thread = prog.crashed_thread()
    print(f"crashed thread: tid {thread.tid}", end="")
    try:
        task = thread.object
        print(f" comm {task.comm.string_().decode()} cpu {task_cpu(task)}")
    except Exception:  # noqa: BLE001
        print()
    trace = thread.stack_trace()
    for i, frame in enumerate(trace):
        name = frame.name or "???"
        try:
            src = "%s:%d:%d" % frame.source()
        except LookupError:
            src = "?"
        pc = frame.pc
        inl = " (inlined)" if frame.is_inline else ""
        print(f"#{i:<2} {name} pc=0x{pc:x} {src}{inl}")
        try:
            for var in frame.locals():
                try:
                    val = fmt_value(frame[var])
                except Exception as e:  # noqa: BLE001
                    val = f"<error: {e}>"
                print(f"      {var} = {val}")
        except Exception as e:  # noqa: BLE001
            print(f"      <locals unavailable: {e}>")


def cmd_ps(prog):
    print("PID     PPID  CPU ST COMM")
    for task in for_each_task(prog):
        try:
            ppid = task.real_parent.pid.value_()
        except drgn.FaultError:
            ppid = -1
        print(f"{task.pid.value_():<7} {ppid:<5} {task_cpu(task):<3} "
              f"{task_state_to_char(task)}  {task.comm.string_().decode(errors='replace')}")


def cmd_dmesg(prog):
    sys.stdout.write(get_dmesg(prog).decode(errors="replace"))


def cmd_mod(prog):
    from drgn.helpers.linux.module import for_each_module
    print("MODULE            NAME                 BASE              SIZE")
    for mod in for_each_module(prog):
        # Folklore: 6.4 (commit ac3b43283923, "module: replace module_layout with module_memory")
        # moved the text from mod->core_layout to mod->mem[MOD_TEXT]; probe for the member.
        try:
            layout = mod.mem[0]
        except (AttributeError, LookupError):
            layout = mod.core_layout
        print(f"{mod.value_():016x}  {mod.name.string_().decode():20} "
              f"{layout.base.value_():016x}  {layout.size.value_()}")


COMMANDS = {"bt": cmd_bt, "ps": cmd_ps, "dmesg": cmd_dmesg, "mod": cmd_mod}


def main():
    what, vmcore, vmlinux, ko = sys.argv[1:5]
    if what == "all":
        all_in_one(vmcore, vmlinux, ko, sys.argv[5], sys.argv[6] if len(sys.argv) > 6 else "")
        return
    COMMANDS[what](load(vmcore, vmlinux, ko))


if __name__ == "__main__":
    main()

//! `runq`: each CPU's runqueue in crash's layout: the current task, RT and CFS queued tasks
//! (CFS group entities walked into).

use crate::output::{usage, CmdError, Output};
use kmortem_kernel::list::walk_list;
use kmortem_kernel::mem::Memory;
use kmortem_kernel::Program;
use serde_json::{json, Value};

/// `runq`
pub(crate) fn runq(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    if let Some(a) = args.first() {
        return Err(usage(format!("runq: unexpected {a}; usage: runq")));
    }
    let p = prog;
    let rt_active = p.offset_of("rq", "rt.active")?;
    let timeline = p.offset_of("rq", "cfs.tasks_timeline")?;
    let mut t = String::new();
    let mut cpus = Vec::new();
    for (n, cpu) in p.present_cpus().into_iter().enumerate() {
        let rq = p.per_cpu("runqueues", cpu)?;
        let curr = p.read_member(rq, "rq", "curr")?;
        let cur = task_row(prog, curr);
        if n > 0 {
            t.push('\n');
        }
        t.push_str(&format!("CPU {cpu} RUNQUEUE: {rq:x}\n"));
        t.push_str(&format!(
            "  CURRENT: PID: {:<6} TASK: {curr:x}  COMMAND: \"{}\"\n",
            cur.1, cur.2
        ));
        let rt = rt_tasks(prog, rq + rt_active)?;
        t.push_str(&format!("  RT PRIO_ARRAY: {:x}\n", rq + rt_active));
        push_rows(prog, &mut t, &rt, "     ");
        let mut groups = Vec::new();
        let cfs = cfs_tasks(prog, rq + timeline, 0, &mut groups)?;
        t.push_str(&format!("  CFS RB_ROOT: {:x}\n", rq + timeline));
        push_rows(prog, &mut t, &cfs, "     ");
        let js = |v: &[(u64, i64, u32)]| {
            v.iter()
                .map(|&(task, prio, depth)| {
                    let r = task_row(prog, task);
                    json!({"task": format!("{task:#x}"), "pid": r.1, "comm": r.2, "prio": prio, "group_depth": depth})
                })
                .collect::<Vec<_>>()
        };
        cpus.push(json!({
            "cpu": cpu,
            "rq": format!("{rq:#x}"),
            "current": {"task": format!("{curr:#x}"), "pid": cur.1, "comm": cur.2},
            "rt_prio_array": format!("{:#x}", rq + rt_active),
            "rt": js(&rt),
            "cfs_rb_root": format!("{:#x}", rq + timeline),
            "cfs": js(&cfs),
        }));
    }
    Ok(Output {
        text: t,
        json: Value::Array(cpus),
    })
}

fn push_rows(prog: &Program, t: &mut String, rows: &[(u64, i64, u32)], pad: &str) {
    if rows.is_empty() {
        t.push_str(&format!("{pad}[no tasks queued]\n"));
    }
    for &(task, prio, depth) in rows {
        let r = task_row(prog, task);
        t.push_str(&format!(
            "{pad}{}[{prio:3}] PID: {:<6} TASK: {task:x}  COMMAND: \"{}\"\n",
            "   ".repeat(depth as usize),
            r.1,
            r.2
        ));
    }
}

fn task_row(prog: &Program, task: u64) -> (u64, i64, String) {
    let p = prog;
    let pid = p.read_member(task, "task_struct", "pid").unwrap_or(0) as u32 as i32 as i64;
    let comm = p
        .offset_of("task_struct", "comm")
        .ok()
        .and_then(|o| p.read_cstr(task + o, 16).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default();
    (task, pid, comm)
}

/// RT tasks: `rt_prio_array.queue[prio]` lists of `sched_rt_entity.run_list`.
fn rt_tasks(prog: &Program, array: u64) -> Result<Vec<(u64, i64, u32)>, CmdError> {
    let p = prog;
    let queue = p.offset_of("rt_prio_array", "queue")?;
    let rt_off = p.offset_of("task_struct", "rt")?;
    let run_list = p.offset_of("sched_rt_entity", "run_list")?;
    let mut out = Vec::new();
    for prio in 0..100u64 {
        let head = array + queue + prio * 16;
        let w = walk_list(p, head, 100_000);
        for n in w.nodes {
            out.push((n - run_list - rt_off, prio as i64, 0));
        }
    }
    Ok(out)
}

/// CFS tasks in vruntime order: an in-order walk of `cfs_rq.tasks_timeline`; a group
/// entity (`se->my_q` set) is walked into.
fn cfs_tasks(
    prog: &Program,
    root: u64,
    depth: u32,
    groups: &mut Vec<u64>,
) -> Result<Vec<(u64, i64, u32)>, CmdError> {
    let p = prog;
    let run_node = p.offset_of("sched_entity", "run_node")?;
    let se_off = p.offset_of("task_struct", "se")?;
    let my_q = p.offset_of("sched_entity", "my_q").ok();
    let timeline = p.offset_of("cfs_rq", "tasks_timeline")?;
    let mut out = Vec::new();
    let mut nodes = Vec::new();
    // iterative in-order walk; rb_node = { __rb_parent_color, rb_right, rb_left }
    let mut stack = Vec::new();
    let mut n = p.read_u64(root)?;
    let mut guard = 0;
    while (n != 0 || !stack.is_empty()) && guard < 1_000_000 {
        guard += 1;
        while n != 0 && stack.len() < 128 {
            stack.push(n);
            n = p.read_u64(n + 16).unwrap_or(0);
        }
        let Some(x) = stack.pop() else { break };
        nodes.push(x);
        n = p.read_u64(x + 8).unwrap_or(0);
    }
    for node in nodes {
        let se = node - run_node;
        let q = my_q.and_then(|o| p.read_u64(se + o).ok()).unwrap_or(0);
        if q != 0 {
            if depth < 8 && !groups.contains(&q) {
                groups.push(q);
                out.extend(cfs_tasks(prog, q + timeline, depth + 1, groups)?);
            }
            continue;
        }
        let task = se - se_off;
        let prio = p.read_member(task, "task_struct", "prio").unwrap_or(0) as u32 as i32;
        out.push((task, prio as i64, depth));
    }
    Ok(out)
}

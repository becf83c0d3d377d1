//! The command language of `kmortem core`: a [`Session`] over one [`Program`] reads a command
//! line, splits it into words and runs the command it names (crash's names and layouts; each
//! command lives in a module of its own and gives text for people and a JSON value for
//! machines, docs/json/core.md).

use crate::output::{usage, CmdError, Output};
use kmortem_kernel::backtrace::BtState;
use kmortem_kernel::printk::LogRecord;
use kmortem_kernel::Program;
use std::path::Path;

pub struct Session {
    pub prog: Program,
    /// The printk log, read once (`log`, `sys`).
    log: crate::sys::LogState,
    /// Where `mod` (and `--modules`) look for module `.ko` files.
    modules: crate::modules::State,
    /// `dis -l`'s line tables.
    dis: crate::dis::State,
    /// `bt` state: ORC tables, DWARF symbolizer, pc cache (kmortem_kernel::backtrace).
    pub bt: BtState,
    /// Whether the warnings found at open were said already (the front end's business).
    pub opened_said: bool,
}

impl Session {
    pub fn new(prog: Program) -> Session {
        Session {
            prog,
            log: Default::default(),
            modules: Default::default(),
            dis: Default::default(),
            bt: Default::default(),
            opened_said: false,
        }
    }

    /// The printk log (read at the first use; its holes are said as warnings at every use).
    pub fn log(&mut self) -> Result<&[LogRecord], CmdError> {
        self.log.get(&self.prog)
    }

    /// Add a directory searched for module debug files (the CLI's `--modules DIR`).
    pub fn add_module_dir(&mut self, dir: &Path) {
        self.modules.add_dir(dir);
    }

    /// Run one command line.
    pub fn run(&mut self, line: &str) -> Result<Output, CmdError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Err(usage("empty command"));
        };
        let prog = &self.prog;
        match cmd {
            "sys" => crate::sys::sys(prog, &mut self.log),
            "log" | "dmesg" => crate::sys::log(prog, &mut self.log, args),
            "ps" => crate::sys::ps(prog),
            "rd" => crate::rd::rd(prog, args),
            "sym" => crate::rd::sym(prog, args),
            "struct" | "union" => crate::ptype::cmd_struct(prog, args),
            "mod" => crate::modules::cmd_mod(prog, &mut self.modules, args),
            "list" => crate::list::list(prog, args),
            "dis" => crate::dis::dis(prog, &mut self.dis, args),
            "runq" => crate::runq::runq(prog, args),
            "kmem" => crate::kmem::kmem(prog, args),
            "bt" => crate::bt::bt(&mut self.bt, prog, args),
            "foreach" => crate::bt::foreach(&mut self.bt, prog, args),
            "help" | "?" => Ok(crate::help::help()),
            _ => Err(crate::help::unknown(cmd)),
        }
    }
}

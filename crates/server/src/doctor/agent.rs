//! The kmortem agent's own health: configured (its systemd unit, or the flags given to
//! doctor), its server answering, and its spool (items waiting, items refused).

use super::{human, unit, Check, Ctx, Status, UNIT_DIRS};
use std::path::PathBuf;

pub const UNIT: &str = "kmortem-agent.service";

/// What the agent is told: from the flags given to doctor, else from the unit's `ExecStart`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    pub server: Option<String>,
    pub token_file: Option<String>,
    pub state_dir: Option<String>,
    /// Where the settings came from (`--server`, `/etc/systemd/system/kmortem-agent.service`).
    pub source: Option<String>,
}

/// The value of `--flag VALUE` or `--flag=VALUE` in a command line.
fn flag(words: &[&str], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    for (i, w) in words.iter().enumerate() {
        if *w == name {
            return words.get(i + 1).map(|v| v.trim_matches('"').to_string());
        }
        if let Some(v) = w.strip_prefix(&eq) {
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

/// The effective `ExecStart=` of the agent's unit: the unit file, then its drop-ins
/// (`kmortem-agent.service.d/*.conf`, as `systemctl edit` writes them), where an empty
/// `ExecStart=` clears the earlier ones. `(path of the last one, command line)`.
pub fn exec_start(ctx: &mut Ctx) -> Option<(String, String)> {
    let mut files = Vec::new();
    for d in UNIT_DIRS.iter().rev() {
        let p = format!("{d}/{UNIT}");
        if ctx.path(&p).is_file() {
            files = vec![p];
        }
    }
    for d in UNIT_DIRS.iter().rev() {
        let dir = format!("{d}/{UNIT}.d");
        if let Ok(rd) = std::fs::read_dir(ctx.path(&dir)) {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".conf"))
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
        }
    }
    let mut cur: Option<(String, String)> = None;
    for f in files {
        let Ok(text) = ctx.read(&f) else { continue };
        for l in text.lines() {
            if let Some(v) = l.trim().strip_prefix("ExecStart=") {
                let v = v.trim();
                cur = (!v.is_empty()).then(|| (f.clone(), v.to_string()));
            }
        }
    }
    cur
}

pub fn config(ctx: &mut Ctx) -> AgentConfig {
    let o = ctx.opts;
    let mut c = AgentConfig {
        server: o.server.clone(),
        token_file: o.token_file.as_ref().map(|p| p.display().to_string()),
        state_dir: o.state_dir.as_ref().map(|p| p.display().to_string()),
        source: o.server.as_ref().map(|_| "--server".to_string()),
    };
    if let Some((file, cmd)) = exec_start(ctx) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if c.server.is_none() {
            c.server = flag(&words, "--server");
            c.source = Some(file);
        }
        if c.token_file.is_none() {
            c.token_file = flag(&words, "--token-file");
        }
        if c.state_dir.is_none() {
            c.state_dir = flag(&words, "--state-dir");
        }
    }
    c
}

pub fn checks(ctx: &mut Ctx) -> Vec<Check> {
    let cfg = config(ctx);
    vec![server(ctx, &cfg), spool(ctx, &cfg)]
}

fn server(ctx: &mut Ctx, cfg: &AgentConfig) -> Check {
    const NAME: &str = "agent.server";
    let Some(url) = cfg.server.clone() else {
        return ctx.check(
            NAME,
            Status::Warn,
            "no kmortem agent is configured on this host (no kmortem-agent.service, no \
             --server): its crashes are not shipped to a server",
            Some(
                "install -m755 kmortem /usr/local/bin/kmortem; install -Dm600 token \
                 /etc/kmortem/token; install -m644 dist/kmortem-agent.service \
                 /etc/systemd/system/ (edit --server); systemctl daemon-reload && systemctl \
                 enable --now kmortem-agent"
                    .into(),
            ),
        );
    };
    let mut status = Status::Ok;
    let mut parts = vec![format!(
        "server {url} (from {})",
        cfg.source.as_deref().unwrap_or("--server")
    )];
    let mut fixes: Vec<String> = Vec::new();
    if cfg.source.as_deref() != Some("--server") {
        let u = unit(ctx, UNIT);
        if u.masked || u.enabled_by.is_none() {
            status = Status::Warn;
            parts.push("kmortem-agent.service is not enabled: it does not start at boot".into());
            fixes.push("systemctl enable --now kmortem-agent".into());
        }
    }
    let token = cfg
        .token_file
        .clone()
        .unwrap_or_else(|| "/etc/kmortem/token".into());
    match ctx.read(&token) {
        Ok(t)
            if t.lines()
                .any(|l| !l.trim().is_empty() && !l.trim().starts_with('#')) =>
        {
            // The token's value is never recorded.
            ctx.note(&token, Ok("a token (not shown)".into()));
        }
        Ok(_) => {
            ctx.note(&token, Ok("no token in it".into()));
            status = Status::Fail;
            parts.push(format!("{token} holds no token: the agent cannot start"));
            fixes.push(format!(
                "put the server's ingest token in {token} (mode 600)"
            ));
        }
        Err(e) => {
            status = Status::Fail;
            parts.push(format!(
                "cannot read the token file {token} ({e}): the agent cannot start"
            ));
            fixes.push(format!(
                "install -Dm600 token {token} (the server's ingest token)"
            ));
        }
    }
    if !ctx.opts.network {
        parts.push("not contacted (--offline)".into());
    } else {
        let t0 = std::time::Instant::now();
        let health = format!("{}/healthz", url.trim_end_matches('/'));
        let agent = ureq::AgentBuilder::new()
            .timeout(ctx.opts.timeout)
            .redirects(0)
            .build();
        match agent.get(&health).call() {
            Ok(r) => {
                ctx.note(&health, Ok(format!("HTTP {}", r.status())));
                parts.push(format!(
                    "it answers (HTTP {} in {} ms)",
                    r.status(),
                    t0.elapsed().as_millis()
                ));
            }
            Err(ureq::Error::Status(code, _)) => {
                ctx.note(&health, Ok(format!("HTTP {code}")));
                status = status.max(Status::Warn);
                parts.push(format!(
                    "{health} answers HTTP {code}: a proxy, or not a kmortem server?"
                ));
            }
            Err(e) => {
                let e = e.to_string();
                ctx.note(&health, Err(e.clone()));
                status = status.max(Status::Warn);
                parts.push(format!(
                    "it does not answer ({e}): crashes wait in the agent's spool until it does"
                ));
                fixes.push(format!(
                    "check that kmortem serve runs and listens where {url} points (curl {health}), \
                     and the firewall between"
                ));
            }
        }
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}

/// (files, bytes, age of the oldest in seconds) of `*.json` files in a directory.
fn items(dir: &std::path::Path) -> Result<(usize, u64, u64), std::io::Error> {
    let mut n = 0;
    let mut bytes = 0;
    let mut oldest = 0;
    let now = std::time::SystemTime::now();
    for e in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".json") {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        n += 1;
        bytes += m.len();
        if let Some(age) = m.modified().ok().and_then(|t| now.duration_since(t).ok()) {
            oldest = oldest.max(age.as_secs());
        }
    }
    Ok((n, bytes, oldest))
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn spool(ctx: &mut Ctx, cfg: &AgentConfig) -> Check {
    const NAME: &str = "agent.spool";
    let state = cfg
        .state_dir
        .clone()
        .unwrap_or_else(|| "/var/lib/kmortem-agent".into());
    let spool_dir = format!("{state}/spool");
    let dir: PathBuf = ctx.path(&spool_dir);
    match items(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ctx.note(&spool_dir, Err("absent".into()));
            let (status, detail) = if cfg.server.is_some() {
                (
                    Status::Warn,
                    format!("no spool in {state}: the agent has not run on this host yet"),
                )
            } else {
                (
                    Status::Ok,
                    "no agent here, so no spool (see agent.server)".to_string(),
                )
            };
            ctx.check(NAME, status, detail, None)
        }
        Err(e) => {
            ctx.note(&spool_dir, Err(e.to_string()));
            ctx.check(
                NAME,
                Status::Warn,
                format!("cannot read the spool {spool_dir}: {e}"),
                Some("run kmortem doctor as root".into()),
            )
        }
        Ok((n, bytes, oldest)) => {
            ctx.note(&spool_dir, Ok(format!("{n} item(s), {}", human(bytes))));
            let mut status = Status::Ok;
            let mut parts: Vec<String> = Vec::new();
            let mut fixes: Vec<String> = Vec::new();
            if n == 0 {
                parts.push("the spool is empty: everything found was delivered".into());
            } else {
                status = Status::Warn;
                parts.push(format!(
                    "{n} item(s) ({}) wait in {spool_dir}, the oldest for {}: the server has not \
                     taken them yet",
                    human(bytes),
                    age(oldest)
                ));
                fixes.push("see agent.server; journalctl -u kmortem-agent says why".into());
            }
            let rej = format!("{state}/rejected");
            if let Ok((r, rb, _)) = items(&ctx.path(&rej)) {
                ctx.note(&rej, Ok(format!("{r} item(s), {}", human(rb))));
                if r > 0 {
                    status = Status::Warn;
                    parts.push(format!(
                        "{r} item(s) the server refused for good are in {rej} (each with its \
                         .reason)"
                    ));
                    fixes.push(format!(
                        "read {rej}/*.reason; delete the items once understood"
                    ));
                }
            }
            if let Ok(sent) = ctx.read_bytes_quiet(&format!("{state}/sent")) {
                let k = sent
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count();
                ctx.note(&format!("{state}/sent"), Ok(format!("{k} key(s)")));
                parts.push(format!("{k} item(s) delivered so far"));
            }
            ctx.check(
                NAME,
                status,
                parts.join("; "),
                (!fixes.is_empty()).then(|| fixes.join("\n")),
            )
        }
    }
}

//! netconsole: a target configured (configfs under `/sys/kernel/config/netconsole`, the
//! `netconsole=` parameter on the kernel command line or in `/etc/modprobe.d`), running
//! (`netcon*` in `/proc/consoles`, configfs `enabled`), and reachable: its interface up, and,
//! for a target behind a router, a gateway MAC address instead of the broadcast default.

use super::{cmdline, param_values, Check, Ctx, Status};
use std::net::Ipv4Addr;

/// One netconsole target, from wherever it was configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `configfs:NAME`, `cmdline`, `/etc/modprobe.d/FILE`.
    pub source: String,
    pub dev: String,
    pub local_ip: Option<String>,
    pub remote_ip: String,
    pub remote_port: u16,
    /// `None`: the default, broadcast (ff:ff:ff:ff:ff:ff).
    pub remote_mac: Option<String>,
    pub extended: bool,
    /// configfs' `enabled`; `None` for parameter targets (running when `netcon` is a console).
    pub enabled: Option<bool>,
}

impl Target {
    fn describe(&self) -> String {
        format!(
            "{} -> {}:{}{}",
            self.dev,
            self.remote_ip,
            self.remote_port,
            if self.extended { " extended" } else { "" }
        )
    }
    fn broadcast(&self) -> bool {
        self.remote_mac
            .as_deref()
            .is_none_or(|m| m.is_empty() || m.eq_ignore_ascii_case("ff:ff:ff:ff:ff:ff"))
    }
}

/// Parse one `netconsole=` value (Documentation/networking/netconsole.rst):
/// `[+][r][src-port]@[src-ip]/[<dev>],[tgt-port]@<tgt-ip>/[tgt-macaddr]`, several targets
/// separated by `;`.
pub fn parse_param(value: &str, source: &str) -> Vec<Target> {
    value
        .split(';')
        .filter(|t| !t.trim().is_empty())
        .filter_map(|t| {
            let t = t.trim();
            let flags: String = t.chars().take_while(|c| matches!(c, '+' | 'r')).collect();
            let t = &t[flags.len()..];
            let (local, remote) = t.split_once(',')?;
            let (_, local) = local.split_once('@').unwrap_or(("", local));
            let (lip, dev) = local.split_once('/').unwrap_or((local, ""));
            let (rport, remote) = remote.split_once('@').unwrap_or(("", remote));
            let (rip, mac) = remote.split_once('/').unwrap_or((remote, ""));
            if rip.is_empty() {
                return None;
            }
            Some(Target {
                source: source.into(),
                dev: if dev.is_empty() {
                    "eth0".into()
                } else {
                    dev.into()
                },
                local_ip: (!lip.is_empty()).then(|| lip.to_string()),
                remote_ip: rip.into(),
                remote_port: rport.parse().unwrap_or(6666),
                remote_mac: (!mac.is_empty()).then(|| mac.to_string()),
                extended: flags.contains('+'),
                enabled: None,
            })
        })
        .collect()
}

/// Every configured target.
pub fn targets(ctx: &mut Ctx) -> Vec<Target> {
    let mut out = Vec::new();
    const CFS: &str = "/sys/kernel/config/netconsole";
    if let Ok(names) = ctx.list(CFS) {
        for n in names {
            let dir = format!("{CFS}/{n}");
            let mut get = |f: &str| {
                ctx.read(&format!("{dir}/{f}"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            let t = Target {
                source: format!("configfs:{n}"),
                dev: get("dev_name"),
                local_ip: Some(get("local_ip")).filter(|s| !s.is_empty()),
                remote_ip: get("remote_ip"),
                remote_port: get("remote_port").parse().unwrap_or(6666),
                remote_mac: Some(get("remote_mac")).filter(|s| !s.is_empty()),
                extended: get("extended") == "1",
                enabled: Some(get("enabled") == "1"),
            };
            out.push(t);
        }
    }
    if let Ok(params) = cmdline(ctx) {
        for v in param_values(&params, "netconsole") {
            out.extend(parse_param(v, "cmdline"));
        }
    }
    for dir in ["/etc/modprobe.d", "/lib/modprobe.d", "/usr/lib/modprobe.d"] {
        let Ok(files) = std::fs::read_dir(ctx.path(dir)) else {
            continue;
        };
        let mut files: Vec<String> = files
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf"))
            .collect();
        files.sort();
        for f in files {
            let p = format!("{dir}/{f}");
            let Ok(text) = ctx.read_bytes_quiet(&p) else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            for l in text.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.len() >= 3 && w[0] == "options" && w[1] == "netconsole" {
                    for opt in &w[2..] {
                        if let Some(v) = opt.strip_prefix("netconsole=") {
                            ctx.note(&p, Ok(l.trim().to_string()));
                            out.extend(parse_param(v.trim_matches('"'), &p));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The netconsole consoles registered now (`netcon0`, `netcon_ext0` in `/proc/consoles`).
pub fn consoles(ctx: &mut Ctx) -> Vec<String> {
    ctx.read("/proc/consoles")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with("netcon"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Descriptions of the targets that send now.
pub fn active(ctx: &mut Ctx) -> Vec<String> {
    let running = !consoles(ctx).is_empty();
    let ts = targets(ctx);
    let mut out: Vec<String> = ts
        .iter()
        .filter(|t| t.enabled.unwrap_or(running))
        .map(Target::describe)
        .collect();
    if out.is_empty() && running {
        out.push("a target not readable from sysfs".into());
    }
    out
}

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dest: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub metric: u32,
}

/// Parse `/proc/net/route`. Folklore: the kernel prints each address as `%08X` of the
/// big-endian `__be32` loaded as a native integer (net/ipv4/fib_trie.c, fib_route_seq_show),
/// so on x86 `10.0.2.2` reads `0202000A`: the bytes are the integer's native-endian bytes.
/// Pinned by doctor::tests::proc_net_route_addresses.
pub fn parse_routes(text: &str) -> Vec<Route> {
    let ip = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(Route {
                iface: f[0].to_string(),
                dest: ip(f[1])?,
                gateway: ip(f[2])?,
                metric: f[6].parse().ok()?,
                mask: ip(f[7])?,
            })
        })
        .collect()
}

/// The route the kernel would pick for `to`: longest prefix, then lowest metric.
pub fn route_to(routes: &[Route], to: Ipv4Addr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| u32::from(to) & u32::from(r.mask) == u32::from(r.dest) & u32::from(r.mask))
        .max_by_key(|r| (u32::from(r.mask).count_ones(), std::cmp::Reverse(r.metric)))
}

const SETUP: &str = "at run time (configfs, CONFIG_NETCONSOLE_DYNAMIC):\n  modprobe netconsole; \
     mkdir /sys/kernel/config/netconsole/kmortem; cd /sys/kernel/config/netconsole/kmortem\n  \
     echo eth0 > dev_name; echo SERVER-IP > remote_ip; echo 6666 > remote_port\n  echo \
     GATEWAY-MAC > remote_mac   # when SERVER-IP is behind a router (ip neigh show GATEWAY)\n  \
     echo 1 > extended; echo 1 > enabled\nat every boot: options netconsole \
     netconsole=+@/eth0,6666@SERVER-IP/GATEWAY-MAC in /etc/modprobe.d/netconsole.conf and \
     netconsole in /etc/modules-load.d/netconsole.conf\non the server: kmortem serve \
     --netconsole 0.0.0.0:6666";

pub fn check(ctx: &mut Ctx) -> Check {
    const NAME: &str = "netconsole";
    let cons = consoles(ctx);
    let ts = targets(ctx);
    let loaded = ctx.exists("/sys/module/netconsole");
    if ts.is_empty() {
        if !cons.is_empty() {
            return ctx.check(
                NAME,
                Status::Ok,
                format!(
                    "netconsole is running ({} in /proc/consoles); its target is not readable \
                     (a module parameter is not shown in sysfs), so its route is not checked",
                    cons.join(", ")
                ),
                None,
            );
        }
        return ctx.check(
            NAME,
            Status::Warn,
            "no netconsole: a panic's messages reach no other machine",
            Some(SETUP.into()),
        );
    }
    let routes = ctx
        .read("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default();
    let mut status = Status::Ok;
    let mut parts: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for t in &ts {
        let running = t.enabled.unwrap_or(!cons.is_empty());
        let d = format!("{} ({})", t.describe(), t.source);
        if !running {
            status = Status::Fail;
            parts.push(format!(
                "{d} is configured but not running{}",
                if t.enabled == Some(false) {
                    " (enabled=0)".to_string()
                } else if !loaded {
                    " (the netconsole module is not loaded)".to_string()
                } else {
                    " (no netcon console in /proc/consoles)".to_string()
                }
            ));
            fixes.push(if t.source.starts_with("configfs:") {
                format!(
                    "echo 1 > /sys/kernel/config/netconsole/{}/enabled (dmesg says why it \
                     refuses)",
                    t.source.trim_start_matches("configfs:")
                )
            } else {
                "modprobe netconsole (dmesg | grep netconsole says why it did not start)".into()
            });
            continue;
        }
        let oper = ctx
            .read(&format!("/sys/class/net/{}/operstate", t.dev))
            .map(|s| s.trim().to_string());
        match oper.as_deref() {
            Err(e) if e == "absent" => {
                status = Status::Fail;
                parts.push(format!("{d}: there is no interface {}", t.dev));
                fixes.push(format!(
                    "point the target at an interface that exists (ip -br link); {} was \
                     renamed or removed",
                    t.dev
                ));
                continue;
            }
            Ok("down") | Ok("lowerlayerdown") | Ok("notpresent") => {
                status = Status::Fail;
                parts.push(format!("{d}: {} is down", t.dev));
                fixes.push(format!(
                    "ip link set {} up (and check its cable or link)",
                    t.dev
                ));
                continue;
            }
            _ => {}
        }
        let Ok(ip) = t.remote_ip.parse::<Ipv4Addr>() else {
            parts.push(format!(
                "{d} is running (an IPv6 target: route not checked)"
            ));
            continue;
        };
        match route_to(&routes, ip) {
            None => {
                status = status.max(Status::Warn);
                parts.push(format!(
                    "{d} is running, but this host has no route to {ip}"
                ));
            }
            // Folklore: netconsole (netpoll) does no ARP: without a MAC it sends to the
            // broadcast address (Documentation/networking/netconsole.rst), and a router does
            // not forward broadcast frames (Linux: ip_forward() drops pkt_type != PACKET_HOST).
            // A target behind a gateway with the default MAC receives nothing, though every
            // setting looks right. Pinned by doctor::tests::netconsole_behind_router_needs_mac.
            Some(r) if r.gateway != Ipv4Addr::UNSPECIFIED && t.broadcast() => {
                status = Status::Fail;
                parts.push(format!(
                    "{d}: {ip} is behind the router {} and the target has no MAC address, so \
                     netconsole broadcasts on the local segment and the router drops it: \
                     nothing arrives",
                    r.gateway
                ));
                fixes.push(format!(
                    "set the gateway's MAC as remote_mac: ip neigh show {} (configfs: echo MAC \
                     > remote_mac with the target disabled; parameter: .../{ip}/MAC)",
                    r.gateway
                ));
            }
            Some(r) if r.iface != t.dev => {
                status = status.max(Status::Warn);
                parts.push(format!(
                    "{d}: the route to {ip} leaves through {}, but netconsole sends on {} \
                     (it ignores routes)",
                    r.iface, t.dev
                ));
                fixes.push(format!("send netconsole on {}", r.iface));
            }
            Some(r) => parts.push(format!(
                "{d} is running; {ip} is {}",
                if r.gateway == Ipv4Addr::UNSPECIFIED {
                    "on the local segment".to_string()
                } else {
                    format!(
                        "behind {} (MAC {})",
                        r.gateway,
                        t.remote_mac.as_deref().unwrap_or("")
                    )
                }
            )),
        }
        if !t.extended {
            parts.push(
                "plain, not extended (+): the server cannot see lost or reordered datagrams".into(),
            );
        }
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}

//! The netconsole receiver on hostile datagrams: any bytes, from a handful of senders, with time
//! passing. It must never panic.
#![no_main]

use kmortem_server::metrics::Metrics;
use kmortem_server::netconsole::{Limits, Receiver};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_senders: 4,
        max_fragments: 4,
        reorder_window: 8,
        ..Limits::default()
    };
    let mut rx = Receiver::detached(Arc::new(Metrics::new()), limits);
    let mut now = Instant::now();
    // Datagrams are separated by 0xFF; the first byte of each picks the sender, and a
    // sender byte of 0xFE makes time pass.
    for d in data.split(|&b| b == 0xff) {
        let Some((&who, rest)) = d.split_first() else { continue };
        if who == 0xfe {
            now += Duration::from_secs(3);
            rx.tick(now);
            continue;
        }
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, who % 8));
        rx.datagram(ip, rest, now);
    }
    rx.flush_all();
    let _ = rx.take_reports();
});

//! Who may ingest, and how often: ingest tokens (one shared token, or one per host) and a
//! per-host request rate limit.
//!
//! The token file (`--token-file`) holds one token per line, blank lines and `#` comments
//! ignored:
//!
//! ```text
//! # a shared token: its holder may report as any host
//! 6f1c0e0f5d6a4b1e9f0c2d3b4a5e6f70
//! # per-host tokens: `HOST TOKEN`; a request with this token reports as HOST only
//! web-1 0a9b8c7d6e5f40312233445566778899
//! ```
//!
//! The server re-reads it on SIGHUP (a bad file keeps the tokens in use and is logged).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest token accepted.
pub const MIN_TOKEN: usize = 16;

/// The accepted ingest tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    shared: Vec<String>,
    /// (host, token)
    hosts: Vec<(String, String)>,
}

/// Who a valid token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The shared token: any host name.
    Shared,
    /// A per-host token: this host name only.
    Host(String),
}

impl Tokens {
    /// Shared tokens only.
    pub fn shared(tokens: Vec<String>) -> Tokens {
        Tokens {
            shared: tokens,
            hosts: Vec::new(),
        }
    }

    /// Add a per-host token.
    pub fn with_host(mut self, host: &str, token: &str) -> Tokens {
        self.hosts.push((host.into(), token.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.hosts.is_empty()
    }

    /// (shared tokens, per-host tokens)
    pub fn counts(&self) -> (usize, usize) {
        (self.shared.len(), self.hosts.len())
    }

    /// Parse a token file's text (see the module doc); `name` is for messages.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut t = Tokens::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let (host, token) = match words[..] {
                [token] => (None, token),
                [host, token] => (Some(host), token),
                _ => {
                    return Err(format!(
                        "line {}: expected `TOKEN` or `HOST TOKEN`, found {} words",
                        i + 1,
                        words.len()
                    ))
                }
            };
            if token.len() < MIN_TOKEN {
                return Err(format!(
                    "line {}: token {:?}... is shorter than {MIN_TOKEN} characters",
                    i + 1,
                    &token[..token.len().min(4)]
                ));
            }
            let known = t
                .shared
                .iter()
                .chain(t.hosts.iter().map(|(_, k)| k))
                .any(|k| k == token);
            if known {
                return Err(format!("line {}: the same token appears twice", i + 1));
            }
            match host {
                None => t.shared.push(token.into()),
                Some(h) => {
                    crate::http::valid_host(h).map_err(|e| format!("line {}: {e}", i + 1))?;
                    t.hosts.push((h.into(), token.into()));
                }
            }
        }
        if t.is_empty() {
            return Err("no token in the file".into());
        }
        Ok(t)
    }

    /// The identity a presented token proves, if any. Every token is compared, each without an
    /// early exit, so that timings tell nothing about which byte differed or which token matched.
    pub fn check(&self, presented: &[u8]) -> Option<Identity> {
        let mut found = None;
        for t in &self.shared {
            if ct_eq(t.as_bytes(), presented) {
                found = Some(Identity::Shared);
            }
        }
        for (h, t) in &self.hosts {
            if ct_eq(t.as_bytes(), presented) {
                found = Some(Identity::Host(h.clone()));
            }
        }
        found
    }
}

/// Compare without an early exit, so a token cannot be guessed byte by byte from timings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the rate limit counts requests by: the per-host token's host, or, for the shared
/// token (whose holder may name any host), the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    Host(String),
    Addr(IpAddr),
}

/// A token bucket per key: `per_sec` requests per second, bursts of up to `burst`.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<RateKey, (f64, Instant)>>,
}

/// Keys kept before idle (full) buckets are forgotten.
const MAX_KEYS: usize = 16_384;

impl RateLimiter {
    /// `per_sec` = 0 turns the limit off.
    pub fn new(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_sec,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_sec > 0.0
    }

    /// Take one request from `key`'s bucket; `Err(wait)` when it is empty (the client may try
    /// again after `wait`).
    pub fn check(&self, key: RateKey, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= MAX_KEYS && !b.contains_key(&key) {
            // Forget buckets that have refilled: they hold no state worth keeping.
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.retain(|_, (level, at)| {
                *level + now.saturating_duration_since(*at).as_secs_f64() * per_sec < burst
            });
        }
        let (level, at) = b.entry(key).or_insert((self.burst, now));
        *level = (*level + now.saturating_duration_since(*at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *level) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_shared_and_per_host() {
        let t =
            Tokens::parse("# comment\n\nshared-token-0123456789\nweb-1 host-token-web1-0123456\n")
                .unwrap();
        assert_eq!(t.counts(), (1, 1));
        assert_eq!(t.check(b"shared-token-0123456789"), Some(Identity::Shared));
        assert_eq!(
            t.check(b"host-token-web1-0123456"),
            Some(Identity::Host("web-1".into()))
        );
        assert_eq!(t.check(b"host-token-web1-012345"), None);
        assert_eq!(t.check(b""), None);
        for (bad, msg) in [
            ("", "no token"),
            ("short", "shorter than 16"),
            ("a b c", "3 words"),
            ("we/b host-token-web1-0123456", "invalid host name"),
            (
                "x token-aaaaaaaaaaaaaaaa\ny token-aaaaaaaaaaaaaaaa",
                "twice",
            ),
        ] {
            let e = Tokens::parse(bad).unwrap_err();
            assert!(e.contains(msg), "{bad:?}: {e}");
        }
    }

    #[test]
    fn rate_limit_buckets_refill_per_key() {
        let r = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        let k = || RateKey::Host("a".into());
        for _ in 0..3 {
            assert!(r.check(k(), t0).is_ok());
        }
        let wait = r.check(k(), t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(r.check(RateKey::Host("b".into()), t0).is_ok());
        // Half a second later one request is allowed again.
        assert!(r.check(k(), t0 + Duration::from_millis(500)).is_ok());
        assert!(r.check(k(), t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0.0, 0.0).check(k(), t0).is_ok());
    }
}

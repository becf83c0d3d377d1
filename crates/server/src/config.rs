//! The server's config file (`kmortem serve --config kmortem.toml`):
//!
//! ```toml
//! # Names for netconsole senders (by source IP address).
//! [hosts]
//! "10.0.0.11" = "k8s-master-1"
//!
//! # Alert rules: POST a JSON event to a webhook.
//! [[alert]]
//! name = "new-crash"
//! when = "new_group"          # a group is seen for the first time
//! webhook = "http://alerts.example:9000/kmortem"
//!
//! [[alert]]
//! name = "crash-storm"
//! when = "rate"               # a group gets more than `per_hour` reports within an hour
//! per_hour = 10
//! kind = "soft_lockup"        # optional: only reports of this kind
//! webhook = "http://alerts.example:9000/kmortem"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub hosts: BTreeMap<IpAddr, String>,
    #[serde(default, rename = "alert")]
    pub alerts: Vec<AlertRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    NewGroup,
    Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub when: When,
    /// For `rate`: fire when a group has more than this many reports in the last hour.
    #[serde(default)]
    pub per_hour: Option<u64>,
    /// Only reports of this kind (`null_pointer_dereference`, `warning`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only reports from this host.
    #[serde(default)]
    pub host: Option<String>,
    /// `http://` URL that receives a JSON POST.
    pub webhook: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("{0}: alert rule {1:?}: {2}")]
    Rule(String, String, String),
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(name.clone(), e))?;
        Self::parse(&text, &name)
    }

    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(name.into(), e.to_string()))?;
        for r in &c.alerts {
            let bad = |m: &str| ConfigError::Rule(name.into(), r.name.clone(), m.into());
            if r.when == When::Rate && r.per_hour.is_none() {
                return Err(bad("`when = \"rate\"` needs `per_hour = N`"));
            }
            if !r.webhook.starts_with("http://") {
                return Err(bad(
                    "webhook must be an http:// URL (put a TLS-terminating relay in front for https)",
                ));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_doc_example() {
        let doc = include_str!("config.rs");
        let toml: String = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = Config::parse(&toml, "doc").unwrap();
        assert_eq!(c.alerts.len(), 2);
        assert_eq!(c.alerts[1].per_hour, Some(10));
        assert_eq!(c.hosts.values().next().unwrap(), "k8s-master-1");
        let err = Config::parse(
            "[[alert]]\nname='x'\nwhen='rate'\nwebhook='http://a'\n",
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("per_hour"), "{err}");
    }
}

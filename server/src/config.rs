//! Configuration, layered: built-in defaults, then an optional TOML file, then `COBOT_*` environment variables.
//!
//! The file is `cobot.toml` in the working directory, or the path in `COBOT_CONFIG`. Every key can be set
//! from the environment by its upper-case name with the `COBOT_` prefix (`COBOT_LISTEN`, `COBOT_DATA_DIR`, ...).

use std::path::PathBuf;

use serde::Deserialize;

/// A secret string: it never appears in `Debug` output or logs.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Where durable data and the generated signing key live.
    pub data_dir: PathBuf,
    /// Seconds a token stays redeemable after the check is passed (WCAG: long enough to finish the form).
    pub token_lifetime_secs: u64,
    /// Seconds a citizen has to answer a challenge.
    pub challenge_ttl_secs: u64,
    /// Token signing key (hex or base64url, at least 32 bytes). Generated into the data directory when absent.
    pub signing_key: Option<Secret>,
    /// The built widget (`cargo xtask widget`); when absent, `target/widget` of the source tree is tried.
    pub widget_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Work asked of the accessible path (the proof of work for citizens who cannot answer the image
    /// question), in leading zero bits of SHA-256: each bit doubles the average time. The default, 20 bits
    /// (a million hashes on average), takes the widget about 0.75 s in headless Chromium on a busy 2-core
    /// server (1.4 million hashes a second), so about 1 to 3 s on a mid-range phone. At most 32.
    pub pow_difficulty_bits: u32,
    /// The Redis that holds all the data, or its durable part when `redis_ephemeral_url` is set: a URL
    /// (`redis://host:port/db`) or a comma-separated list of Redis Cluster seed nodes. It must run with
    /// `appendonly yes`, `appendfsync always` and `maxmemory-policy noeviction`. Unset: the embedded store.
    pub redis_url: Option<Secret>,
    /// Where short-lived data (challenges, tokens) goes instead, e.g. a capped instance that evicts.
    pub redis_ephemeral_url: Option<Secret>,
    /// Seconds between batch consensus runs (Dawid–Skene over every vote of each project; see
    /// `reestimate`). 0 turns them off.
    pub consensus_interval_secs: u64,
}

impl Settings {
    /// Reads the layered configuration.
    pub fn load() -> Result<Self, config::ConfigError> {
        let file = std::env::var("COBOT_CONFIG").unwrap_or_else(|_| "cobot.toml".into());
        let explicit = std::env::var_os("COBOT_CONFIG").is_some();
        config::Config::builder()
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("data_dir", "./data")?
            .set_default("token_lifetime_secs", 300)?
            .set_default("challenge_ttl_secs", 600)?
            .set_default("log_format", "pretty")?
            .set_default("pow_difficulty_bits", 20)?
            .set_default("consensus_interval_secs", 600)?
            .add_source(
                config::File::with_name(&file)
                    .format(config::FileFormat::Toml)
                    .required(explicit),
            )
            .add_source(config::Environment::with_prefix("COBOT").try_parsing(true))
            .build()?
            .try_deserialize()
    }

    /// The folder the widget assets are served from.
    pub fn widget_dir(&self) -> PathBuf {
        self.widget_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/widget")))
    }
}

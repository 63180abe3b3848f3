//! Settings: command-line flags, each with an environment variable, and optionally the JSON file that
//! `cobot-server site create` prints (`{"sitekey": "...", "secret": "..."}`). Flags and variables win over
//! the file.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, clap::Parser)]
#[command(
    name = "demo-site",
    version,
    about = "Démo : formulaire de signalement protégé par Cobot"
)]
pub struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// The Cobot server as the visitor's browser reaches it (where `widget.js` is loaded from).
    #[arg(long, env = "COBOT_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// The Cobot server as this site's backend reaches it, for `/siteverify` [default: the public URL].
    #[arg(long, env = "COBOT_URL")]
    pub cobot_url: Option<String>,
    /// The site key shown to the widget.
    #[arg(long, env = "DEMO_SITEKEY")]
    pub sitekey: Option<String>,
    /// The site secret used to redeem tokens (prefer the environment or --site-file to the command line).
    #[arg(long, env = "DEMO_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// JSON file with `sitekey` and `secret`, as printed by `cobot-server site create`.
    #[arg(long, env = "DEMO_SITE_FILE")]
    pub site_file: Option<PathBuf>,
}

/// A site secret: shown by nothing, not even `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    /// Without a trailing slash.
    pub public_url: String,
    /// Without a trailing slash; `http://` only (see [`ConfigError::TlsBackend`]).
    pub cobot_url: String,
    pub sitekey: String,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no site key: set DEMO_SITEKEY (or --sitekey), or give --site-file with the output of `cobot-server site create`"
    )]
    MissingSitekey,
    #[error(
        "no site secret: set DEMO_SECRET (or --secret), or give --site-file with the output of `cobot-server site create`"
    )]
    MissingSecret,
    #[error("cannot read the site file {path}")]
    SiteFile { path: PathBuf, source: std::io::Error },
    #[error("the site file {path} is not JSON with \"sitekey\" and \"secret\" strings")]
    SiteFileFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{name} must be an http:// or https:// URL, not `{value}`")]
    BadUrl { name: &'static str, value: String },
    #[error("COBOT_URL must be an http:// URL (`{0}`): this demo's HTTP client is built without TLS")]
    TlsBackend(String),
}

#[derive(Deserialize)]
struct SiteFile {
    sitekey: Option<String>,
    secret: Option<String>,
}

impl Args {
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let from_file = match &self.site_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SiteFile {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str::<SiteFile>(&text).map_err(|source| ConfigError::SiteFileFormat {
                    path: path.clone(),
                    source,
                })?
            }
            None => SiteFile {
                sitekey: None,
                secret: None,
            },
        };
        let non_empty = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let sitekey = non_empty(self.sitekey)
            .or(non_empty(from_file.sitekey))
            .ok_or(ConfigError::MissingSitekey)?;
        let secret = non_empty(self.secret)
            .or(non_empty(from_file.secret))
            .ok_or(ConfigError::MissingSecret)?;
        let public_url = base_url("COBOT_PUBLIC_URL", &self.public_url)?;
        let cobot_url = match self.cobot_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => base_url("COBOT_URL", &url)?,
            None => public_url.clone(),
        };
        if !cobot_url.starts_with("http://") {
            return Err(ConfigError::TlsBackend(cobot_url));
        }
        Ok(Settings {
            listen: self.listen,
            public_url,
            cobot_url,
            sitekey,
            secret: Secret::new(secret),
        })
    }
}

/// Checks the scheme and drops trailing slashes, so that paths can be appended with `format!`.
fn base_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        // Characters that would end an attribute or a CSP source are refused outright.
        Some(host) if !host.is_empty() && !trimmed.contains(['"', '\'', '<', '>', ' ', ';', ',']) => {
            Ok(trimmed.to_owned())
        }
        _ => Err(ConfigError::BadUrl {
            name,
            value: value.to_owned(),
        }),
    }
}

impl Settings {
    /// `scheme://host[:port]` of the public URL, for the Content-Security-Policy.
    pub fn public_origin(&self) -> &str {
        let after_scheme = self.public_url.find("://").map_or(0, |i| i + 3);
        let end = self.public_url[after_scheme..]
            .find('/')
            .map_or(self.public_url.len(), |i| after_scheme + i);
        &self.public_url[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments as clap would give them, built by hand so that the environment of the test run
    /// (a `DEMO_SECRET` set for another purpose) cannot leak in.
    fn args() -> Args {
        Args {
            listen: "127.0.0.1:0".into(),
            public_url: "http://127.0.0.1:8080".into(),
            cobot_url: None,
            sitekey: Some("k".into()),
            secret: Some("s".into()),
            site_file: None,
        }
    }

    #[test]
    fn the_command_line_names_the_documented_variables() {
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for name in [
            "DEMO_LISTEN",
            "COBOT_PUBLIC_URL",
            "COBOT_URL",
            "DEMO_SITEKEY",
            "DEMO_SECRET",
            "--site-file",
        ] {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let settings = Args {
            secret: Some("0xdeadbeef".into()),
            ..args()
        }
        .into_settings()
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("deadbeef"), "{printed}");
        assert_eq!(settings.secret.expose(), "0xdeadbeef");
    }

    #[test]
    fn a_missing_secret_is_a_clear_error() {
        let err = Args {
            secret: None,
            ..args()
        }
        .into_settings()
        .unwrap_err();
        assert!(matches!(err, ConfigError::MissingSecret), "{err}");
        assert!(err.to_string().contains("DEMO_SECRET"));
    }

    #[test]
    fn the_site_file_gives_key_and_secret_and_flags_override_it() {
        let dir = std::env::temp_dir().join(format!("demo-site-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("site.json");
        std::fs::write(
            &path,
            r#"{"sitekey": "from-file", "secret": "0xfile", "hostnames": ["x"]}"#,
        )
        .unwrap();
        let from_file = Args {
            sitekey: None,
            secret: None,
            site_file: Some(path.clone()),
            ..args()
        };
        let settings = from_file.into_settings().unwrap();
        assert_eq!(
            (settings.sitekey.as_str(), settings.secret.expose()),
            ("from-file", "0xfile")
        );
        let overridden = Args {
            sitekey: Some("flag".into()),
            secret: None,
            site_file: Some(path),
            ..args()
        };
        let settings = overridden.into_settings().unwrap();
        assert_eq!(
            (settings.sitekey.as_str(), settings.secret.expose()),
            ("flag", "0xfile")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn urls_lose_their_trailing_slash_and_the_backend_url_defaults_to_the_public_one() {
        let settings = Args {
            public_url: "http://cobot.test:8080/".into(),
            ..args()
        }
        .into_settings()
        .unwrap();
        assert_eq!(settings.public_url, "http://cobot.test:8080");
        assert_eq!(settings.cobot_url, "http://cobot.test:8080");
        assert_eq!(settings.public_origin(), "http://cobot.test:8080");
    }

    #[test]
    fn the_origin_drops_a_path_prefix() {
        let settings = Args {
            public_url: "https://x.gouv.fr/cobot".into(),
            cobot_url: Some("http://10.0.0.2:8080".into()),
            ..args()
        }
        .into_settings()
        .unwrap();
        assert_eq!(settings.public_origin(), "https://x.gouv.fr");
        assert_eq!(settings.cobot_url, "http://10.0.0.2:8080");
    }

    #[test]
    fn bad_urls_are_refused() {
        let err = Args {
            public_url: "javascript:alert(1)".into(),
            ..args()
        }
        .into_settings();
        assert!(matches!(err, Err(ConfigError::BadUrl { .. })));
        let err = Args {
            cobot_url: Some("https://cobot.test".into()),
            ..args()
        }
        .into_settings();
        assert!(matches!(err, Err(ConfigError::TlsBackend(_))));
    }
}

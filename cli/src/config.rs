//! Where `cobot` finds the server and the API key: `COBOT_SERVER` and `COBOT_API_KEY` first, then the
//! credentials file that `cobot login` writes (`$XDG_CONFIG_HOME/cobot/credentials.toml`, or
//! `~/.config/cobot/credentials.toml`).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "credentials.toml";
pub const SERVER_ENV: &str = "COBOT_SERVER";
pub const KEY_ENV: &str = "COBOT_API_KEY";

/// A server and the API key to use on it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Base URL, without a trailing slash (`https://cobot.example.gouv.fr`).
    pub server: String,
    pub key: String,
}

// The key is a secret: it must not end up in a log or an error message through `{:?}`.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Checks a server URL and removes its trailing slashes, so that paths can be appended as they are.
pub fn normalise_server(raw: &str) -> anyhow::Result<String> {
    let url = raw.trim().trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        bail!("server URL `{raw}`: must start with https:// (or http:// for a local test server)");
    };
    if rest.is_empty() || rest.contains(['/', '?', '#']) {
        bail!("server URL `{raw}`: give the server's address only, without a path");
    }
    Ok(url.to_owned())
}

/// The directory holding `credentials.toml`.
pub fn config_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("cobot"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("cobot")),
        None => bail!("neither XDG_CONFIG_HOME nor HOME is set: pass --config-dir"),
    }
}

/// The credentials to use: each of `COBOT_SERVER` and `COBOT_API_KEY` overrides the file's value.
pub fn load(dir: &Path) -> anyhow::Result<Credentials> {
    let server = std::env::var(SERVER_ENV).ok().filter(|v| !v.is_empty());
    let key = std::env::var(KEY_ENV).ok().filter(|v| !v.is_empty());
    if let (Some(server), Some(key)) = (&server, &key) {
        return Ok(Credentials {
            server: normalise_server(server).context(SERVER_ENV)?,
            key: key.clone(),
        });
    }
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "not logged in: run `cobot login --server URL --key KEY` (or set {SERVER_ENV} and {KEY_ENV}); \
                 {} does not exist",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let file: Credentials = toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    Ok(Credentials {
        server: normalise_server(server.as_deref().unwrap_or(&file.server))?,
        key: key.unwrap_or(file.key),
    })
}

/// Writes the credentials file, readable by its owner only (mode 0600 from the start, never wider).
pub fn save(dir: &Path, credentials: &Credentials) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE_NAME);
    let text = toml::to_string(credentials).context("cannot encode the credentials")?;
    // A temporary file is created 0600 by `tempfile`; renaming it keeps that mode and never leaves a
    // half-written file behind.
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_lose_their_trailing_slash_and_need_a_scheme() {
        assert_eq!(
            normalise_server("https://cobot.example.fr/").unwrap(),
            "https://cobot.example.fr"
        );
        assert_eq!(
            normalise_server("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalise_server("cobot.example.fr").is_err());
        assert!(normalise_server("https://cobot.example.fr/api").is_err());
        assert!(normalise_server("https://").is_err());
    }

    #[test]
    fn credentials_round_trip_through_a_file_only_the_owner_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials {
            server: "http://127.0.0.1:1".into(),
            key: "cobot_secret".into(),
        };
        let path = save(dir.path(), &credentials).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let read: Credentials = toml::from_str(&text).unwrap();
        assert_eq!(read, credentials);
        assert!(!format!("{credentials:?}").contains("cobot_secret"));
    }
}

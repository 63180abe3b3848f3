//! The owner API over blocking HTTP: the API key on every request, the server's JSON errors turned into
//! messages, and retries with backoff where resending cannot do harm.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use protocol::ApiError;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Credentials;

/// Attempts in all (the first and the retries), and the wait before the first retry, doubled each time.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Whether a request may be sent again after a failure whose effect on the server is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, and uploads (the server recognises an image it already holds): retried on connection
    /// errors, timeouts and 5xx replies.
    Idempotent,
    /// Creations: retried only when the connection could not be made, so the server never saw them.
    IfNotSent,
}

pub struct Api {
    http: Client,
    server: String,
    key: String,
}

impl Api {
    pub fn new(credentials: &Credentials) -> anyhow::Result<Self> {
        let http = Client::builder()
            .user_agent(concat!("cobot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Generous: exports of large projects stream for a while, and uploads carry up to ~20 MiB.
            .timeout(Duration::from_secs(600))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            http,
            server: credentials.server.clone(),
            key: credentials.key.clone(),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.send("GET", path, Retry::Idempotent, || self.http.get(self.url(path)))?;
        json(resp, path)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> anyhow::Result<T> {
        let resp = self.send("POST", path, retry, || self.http.post(self.url(path)).json(body))?;
        json(resp, path)
    }

    /// DELETE, whose reply body is not needed.
    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send("DELETE", path, Retry::Idempotent, || {
            self.http.delete(self.url(path))
        })?;
        Ok(())
    }

    /// A multipart POST; `form` builds the body anew for each attempt (a sent form is consumed).
    pub fn post_multipart<T: DeserializeOwned>(
        &self,
        path: &str,
        form: impl Fn() -> reqwest::blocking::multipart::Form,
    ) -> anyhow::Result<T> {
        let resp = self.send("POST", path, Retry::Idempotent, || {
            self.http.post(self.url(path)).multipart(form())
        })?;
        json(resp, path)
    }

    /// Streams a GET's body into `out` and returns its length, never holding it whole in memory.
    pub fn download(&self, path: &str, out: &mut impl Write) -> anyhow::Result<u64> {
        let mut resp = self.send("GET", path, Retry::Idempotent, || self.http.get(self.url(path)))?;
        resp.copy_to(out)
            .with_context(|| format!("GET {path}: the download was interrupted"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// Sends with the API key, retrying as `retry` allows; a non-2xx reply becomes an error that carries the
    /// server's code and message.
    fn send(
        &self,
        method: &str,
        path: &str,
        retry: Retry,
        mut build: impl FnMut() -> RequestBuilder,
    ) -> anyhow::Result<Response> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = build().bearer_auth(&self.key).send();
            let retryable = match &result {
                Ok(resp) => resp.status().is_server_error() && retry == Retry::Idempotent,
                Err(e) => {
                    e.is_connect() || (retry == Retry::Idempotent && (e.is_timeout() || e.is_request()))
                }
            };
            if !retryable || attempt == ATTEMPTS {
                let resp = result.with_context(|| {
                    format!(
                        "{method} {path}: cannot reach the server at {} (tried {attempt} time(s))",
                        self.server
                    )
                })?;
                return check_status(resp, method, path);
            }
            std::thread::sleep(backoff);
            backoff *= 2;
            attempt += 1;
        }
    }
}

fn check_status(resp: Response, method: &str, path: &str) -> anyhow::Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().unwrap_or_default();
    let detail = match serde_json::from_str::<ApiError>(&body) {
        Ok(error) => format!("{} ({})", error.message, error.error),
        Err(_) if body.trim().is_empty() => String::from("no details"),
        Err(_) => body.chars().take(300).collect(),
    };
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!("{method} {path}: the server refused the API key ({status}): {detail}");
    }
    Err(anyhow!("{method} {path}: the server answered {status}: {detail}"))
}

fn json<T: DeserializeOwned>(resp: Response, path: &str) -> anyhow::Result<T> {
    let body = resp
        .bytes()
        .with_context(|| format!("{path}: the reply was interrupted"))?;
    serde_json::from_slice(&body).with_context(|| format!("{path}: unexpected reply from the server"))
}

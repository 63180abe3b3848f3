//! The calls the widget makes to its own server, with `fetch` from `web-sys` directly.
//!
//! Replies are read with the browser's JSON parser and picked apart field by field: `serde_json` or
//! `serde-wasm-bindgen` would cost the citizen more download than these few fields are worth. What arrives is
//! still turned into the `protocol` types, so the widget and the server agree on shapes and identifiers.

use js_sys::{Array, JSON, Object, Reflect};
use protocol::{
    AnswerResponse, ApiError, Challenge, ChallengeId, ChallengeImage, LabelChoice, LabelId, Lang,
    PowChallenge, SiteKey, paths,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestCredentials, RequestInit, Response};

/// Why a call did not give what the widget needs. `Clone + PartialEq` so that it can live in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// The request did not reach the server or no reply came back (offline, DNS, CORS refusal).
    Network,
    /// The server refused, with its `ApiError` body (or only a status when the body was not one).
    Api { status: u16, code: String },
    /// A reply that is not what the protocol says; also an image URL that is not a path on our server.
    BadReply,
    /// The widget was given no valid sitekey, so it cannot even ask.
    Misconfigured,
}

impl ServiceError {
    /// The code given to the integrator's error callback and in `cobot:error` events.
    pub fn code(&self) -> &str {
        match self {
            ServiceError::Network => "network-error",
            ServiceError::Api { code, .. } => code,
            ServiceError::BadReply => "bad-reply",
            ServiceError::Misconfigured => "invalid-sitekey",
        }
    }
}

/// What the server said of the citizen's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed { token: String, expires_in: u32 },
    WrongAnswer,
}

/// `POST {base}/api/v1/challenge`.
pub async fn fetch_challenge(base: &str, sitekey: &SiteKey, lang: Lang) -> Result<Challenge, ServiceError> {
    let body = Object::new();
    set(&body, "sitekey", &sitekey.as_str().into());
    set(&body, "lang", &lang.as_str().into());
    let reply = post_json(&join(base, paths::CHALLENGE), &body).await?;
    parse_challenge(&reply).ok_or(ServiceError::BadReply)
}

/// `POST {base}/api/v1/challenge/{id}/answer`.
pub async fn submit_answers(
    base: &str,
    challenge_id: &ChallengeId,
    answers: &[LabelId],
) -> Result<Verdict, ServiceError> {
    let list = answers
        .iter()
        .map(|a| JsValue::from_str(a.as_str()))
        .collect::<Array>();
    let body = Object::new();
    set(&body, "answers", &list);
    let reply = post_json(&join(base, &paths::answer(challenge_id.as_str())), &body).await?;
    parse_verdict(&reply)
}

/// `POST {base}/api/v1/challenge/pow`: the accessible path.
pub async fn fetch_pow_challenge(
    base: &str,
    sitekey: &SiteKey,
    lang: Lang,
) -> Result<PowChallenge, ServiceError> {
    let body = Object::new();
    set(&body, "sitekey", &sitekey.as_str().into());
    set(&body, "lang", &lang.as_str().into());
    let reply = post_json(&join(base, paths::POW_CHALLENGE), &body).await?;
    let difficulty_bits = get(&reply, "difficulty_bits").as_f64().map(f64_to_u64);
    let parsed = (|| {
        Some(PowChallenge {
            challenge_id: ChallengeId::parse(get_string(&reply, "challenge_id")?).ok()?,
            salt: get_string(&reply, "salt")?,
            // More than the protocol allows would keep a phone busy for minutes: refuse it as a bad reply.
            difficulty_bits: u32::try_from(difficulty_bits?)
                .ok()
                .filter(|b| *b <= protocol::pow::MAX_DIFFICULTY_BITS)?,
            expires_at: get_string(&reply, "expires_at").unwrap_or_default(),
        })
    })();
    parsed.ok_or(ServiceError::BadReply)
}

/// `POST {base}/api/v1/challenge/{id}/answer` with the proof of work's nonce.
pub async fn submit_nonce(
    base: &str,
    challenge_id: &ChallengeId,
    nonce: u64,
) -> Result<Verdict, ServiceError> {
    let body = Object::new();
    // A string: a JSON number loses digits above 2^53 in JavaScript.
    set(&body, "nonce", &JsValue::from_str(&protocol::pow::decimal(nonce)));
    let reply = post_json(&join(base, &paths::answer(challenge_id.as_str())), &body).await?;
    parse_verdict(&reply)
}

fn parse_verdict(reply: &JsValue) -> Result<Verdict, ServiceError> {
    let reply = AnswerResponse {
        success: get(reply, "success").as_bool() == Some(true),
        token: get_string(reply, "token"),
        expires_in: get(reply, "expires_in").as_f64().map(f64_to_u64),
        error: get_string(reply, "error"),
    };
    match reply {
        AnswerResponse {
            success: true,
            token: Some(token),
            expires_in,
            ..
        } if !token.is_empty() => {
            // Without a lifetime, assume the contract's default of five minutes.
            let expires_in = expires_in.map_or(300, |s| u32::try_from(s).unwrap_or(u32::MAX));
            Ok(Verdict::Passed { token, expires_in })
        }
        AnswerResponse { success: false, .. } => Ok(Verdict::WrongAnswer),
        AnswerResponse { .. } => Err(ServiceError::BadReply),
    }
}

/// `base` has no trailing slash (the loader strips it) and `path` starts with one.
pub fn join(base: &str, path: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len());
    url.push_str(base);
    url.push_str(path);
    url
}

async fn post_json(url: &str, body: &Object) -> Result<JsValue, ServiceError> {
    let init = RequestInit::new();
    init.set_method("POST");
    // No cookies either way: the widget identifies nobody, and the server sets none.
    init.set_credentials(RequestCredentials::Omit);
    let headers = Object::new();
    set(&headers, "Content-Type", &"application/json".into());
    init.set_headers(&headers);
    let json = JSON::stringify(body).map_err(|_| ServiceError::BadReply)?;
    init.set_body(&json);

    let window = web_sys::window().ok_or(ServiceError::Network)?;
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| ServiceError::Network)?
        .dyn_into()
        .map_err(|_| ServiceError::Network)?;
    let json = match response.json() {
        Ok(promise) => JsFuture::from(promise).await.ok(),
        Err(_) => None,
    };
    if response.ok() {
        return json.ok_or(ServiceError::BadReply);
    }
    let status = response.status();
    let error = json.and_then(|body| {
        Some(ApiError {
            success: false,
            error: get_string(&body, "error")?,
            message: get_string(&body, "message").unwrap_or_default(),
        })
    });
    Err(ServiceError::Api {
        status,
        code: error.map_or_else(|| "http-error".into(), |e| e.error),
    })
}

fn parse_challenge(v: &JsValue) -> Option<Challenge> {
    let labels = get(v, "labels")
        .dyn_into::<Array>()
        .ok()?
        .iter()
        .map(|l| {
            Some(LabelChoice {
                id: LabelId::parse(get_string(&l, "id")?).ok()?,
                text: get_string(&l, "text")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let images = get(v, "images")
        .dyn_into::<Array>()
        .ok()?
        .iter()
        .map(|i| {
            let url = get_string(&i, "url")?;
            // Only paths on our own server: the widget must not make the browser call anyone else.
            (url.starts_with('/') && !url.starts_with("//")).then(|| ChallengeImage {
                url,
                alt: get_string(&i, "alt").unwrap_or_default(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    if labels.is_empty() || images.is_empty() {
        return None;
    }
    Some(Challenge {
        challenge_id: ChallengeId::parse(get_string(v, "challenge_id")?).ok()?,
        question: get_string(v, "question")?,
        labels,
        images,
        expires_at: get_string(v, "expires_at").unwrap_or_default(),
    })
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn get_string(v: &JsValue, key: &str) -> Option<String> {
    get(v, key).as_string()
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a JSON number of seconds, clamped first
fn f64_to_u64(x: f64) -> u64 {
    x.clamp(0.0, 1e9) as u64
}

//! The test keys of `protocol::test_keys`: sitekeys and secrets that always pass or always fail, for the
//! integrators' own test suites (as hCaptcha and Turnstile offer).
//!
//! A challenge of a test sitekey is made here, not from a site: no site is looked up, any `Origin` is accepted
//! (the page of a test runs on `localhost` or a CI host), and its question, labels and images are built in.
//! It is stored like any challenge, short-lived and single use, so that the answer endpoint finds it, but its
//! slots name no image: both are controls of an image id that does not exist, so that no path could ever
//! harvest an answer from it. The widget API branches here on the challenge's sitekey before anything that
//! reaches a project, an image or a contribution: a test challenge never adds a contribution nor a control
//! statistic, and its proof of work is not charged to any quota.
//!
//! The test secrets are answered here too, before `siteverify` parses a secret or asks the store anything:
//! the pass secret accepts any response without consuming it, the fail secret refuses every one.

use std::io::Cursor;
use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use image::{ImageFormat, Rgb, RgbImage};
use protocol::siteverify_errors as codes;
use protocol::{
    ChallengeImage, ChallengeRequest, LabelChoice, LabelId, Lang, PowChallenge, SiteKey, SiteverifyResponse,
    checks, test_keys,
};

use super::challenge::{
    Answer, ChallengeError, difficulty_bits, issue_token, origin_host, pow_salt, wrong_answer,
};
use crate::model::{ChallengeState, ImageId, ProjectId, Slot, UnixTime, now, rfc3339};
use crate::startup::AppState;
use crate::store::{Store, StoreError};
use crate::token::{Check, TokenKey, random_id};

/// Which of the two test sitekeys a challenge belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// Every well-formed answer passes.
    Pass,
    /// Every answer is wrong.
    Fail,
}

impl TestKey {
    /// The test key a sitekey is, if it is one.
    pub fn of(sitekey: &SiteKey) -> Option<Self> {
        match sitekey.as_str() {
            test_keys::PASS_SITEKEY => Some(TestKey::Pass),
            test_keys::FAIL_SITEKEY => Some(TestKey::Fail),
            _ => None,
        }
    }

    fn question(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (TestKey::Pass, Lang::Fr) => "Clé de test\u{a0}: choisissez n’importe quelle réponse.",
            (TestKey::Pass, Lang::En) => "Test key: choose any answer.",
            (TestKey::Fail, Lang::Fr) => "Clé de test d’échec\u{a0}: toute réponse sera refusée.",
            (TestKey::Fail, Lang::En) => "Failing test key: every answer will be refused.",
        }
    }
}

/// The test question's labels: `(id, French, English)`.
const LABELS: [(&str, &str, &str); 2] = [("a", "Réponse A", "Answer A"), ("b", "Réponse B", "Answer B")];

/// The number of images of a test challenge, as of a real one.
const IMAGES: usize = 2;

/// The image id of a test challenge's slots: no project has it, and no test path ever reads it.
const NO_IMAGE: ImageId = ImageId(u64::MAX);
/// The project of a test challenge: none (project ids are counted from 1).
const NO_PROJECT: ProjectId = ProjectId(u64::MAX);

fn image_alt(lang: Lang, position: usize) -> String {
    match lang {
        Lang::Fr => {
            format!("Image {position} sur {IMAGES}\u{a0}: image de test de Cobot (damier), rien à décrire")
        }
        Lang::En => {
            format!("Image {position} of {IMAGES}: Cobot test image (checkerboard), nothing to describe")
        }
    }
}

/// The state of a test challenge: no project, and slots that are controls of no image.
fn test_challenge(
    id: String,
    sitekey: SiteKey,
    hostname: String,
    slots: usize,
    expires_at: UnixTime,
) -> ChallengeState {
    ChallengeState {
        id,
        sitekey,
        hostname,
        project: NO_PROJECT,
        slots: (0..slots)
            .map(|_| Slot {
                image: NO_IMAGE,
                expected: LabelId::parse(LABELS[0].0).ok(),
            })
            .collect(),
        expires_at,
    }
}

/// `POST /api/v1/challenge` with a test sitekey: the built-in question, from any page.
pub(super) async fn create(
    req: &HttpRequest,
    request: &ChallengeRequest,
    key: TestKey,
    state: &AppState,
) -> Result<HttpResponse, ChallengeError> {
    let hostname = origin_host(req)?;
    let lang = request.lang;
    let id = random_id();
    let expires_at = now() + state.settings.challenge_ttl_secs;
    let challenge = protocol::Challenge {
        challenge_id: protocol::ChallengeId::parse(id.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        question: key.question(lang).to_owned(),
        labels: LABELS
            .iter()
            .filter_map(|(id, fr, en)| {
                Some(LabelChoice {
                    id: LabelId::parse(*id).ok()?,
                    text: (*match lang {
                        Lang::Fr => fr,
                        Lang::En => en,
                    })
                    .to_owned(),
                })
            })
            .collect(),
        images: (0..IMAGES)
            .map(|n| ChallengeImage {
                url: format!("{}/{id}/image/{n}", protocol::paths::CHALLENGE),
                alt: image_alt(lang, n + 1),
            })
            .collect(),
        expires_at: rfc3339(expires_at),
    };
    state
        .store
        .put_challenge(test_challenge(
            id,
            request.sitekey.clone(),
            hostname,
            IMAGES,
            expires_at,
        ))
        .await?;
    tracing::info!(outcome = "test-key", "test challenge issued");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(challenge))
}

/// `POST /api/v1/challenge/pow` with a test sitekey: a proof of work like a real site's, with no quota.
pub(super) async fn create_pow(
    req: &HttpRequest,
    request: &ChallengeRequest,
    state: &AppState,
) -> Result<HttpResponse, ChallengeError> {
    let hostname = origin_host(req)?;
    let id = random_id();
    let expires_at = now() + state.settings.challenge_ttl_secs;
    let challenge = PowChallenge {
        challenge_id: protocol::ChallengeId::parse(id.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        salt: pow_salt(&id, &request.sitekey),
        difficulty_bits: difficulty_bits(state),
        expires_at: rfc3339(expires_at),
    };
    // No slot: a proof-of-work challenge, as for a real site.
    state
        .store
        .put_challenge(test_challenge(
            id,
            request.sitekey.clone(),
            hostname,
            0,
            expires_at,
        ))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(challenge))
}

/// The built-in test tiles, one per position: a checkerboard that no one could take for an aerial view,
/// encoded once as PNG (a flat pattern compresses to a few hundred bytes).
static TILES: LazyLock<Result<[Vec<u8>; IMAGES], String>> = LazyLock::new(|| {
    Ok([
        test_tile(Rgb([0x00, 0x00, 0x91]))?,
        test_tile(Rgb([0xe1, 0x00, 0x0f]))?,
    ])
});

fn test_tile(colour: Rgb<u8>) -> Result<Vec<u8>, String> {
    const SIZE: u32 = 128;
    const SQUARE: u32 = 16;
    let light = Rgb([0xf5, 0xf5, 0xfe]);
    let tile = RgbImage::from_fn(SIZE, SIZE, |x, y| {
        if (x / SQUARE + y / SQUARE).is_multiple_of(2) {
            colour
        } else {
            light
        }
    });
    let mut png = Cursor::new(Vec::new());
    tile.write_to(&mut png, ImageFormat::Png)
        .map_err(|e| format!("cannot encode the test tile: {e}"))?;
    Ok(png.into_inner())
}

/// `GET /api/v1/challenge/{id}/image/{n}` of a test challenge: a built-in tile, never a project's image.
pub(super) fn image(challenge: &ChallengeState, n: usize) -> Result<HttpResponse, ChallengeError> {
    if n >= challenge.slots.len() {
        return Err(ChallengeError::UnknownImage);
    }
    // Encoding a constant picture in memory does not fail; if it ever did, it would be a server fault.
    let tiles = TILES
        .as_ref()
        .map_err(|e| ChallengeError::Store(StoreError::Unavailable(e.clone())))?;
    let bytes = tiles.get(n).ok_or(ChallengeError::UnknownImage)?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes.clone()))
}

/// `POST /api/v1/challenge/{id}/answer` of a test challenge, after the `Origin` check. The answer is checked
/// for form as for a real challenge (kind, count, labels), then the challenge is consumed; the pass key issues
/// a token, signed like any other, the fail key answers `wrong-answer`. A proof of work with the pass key
/// must meet the difficulty, as for a real site; with the fail key it is wrong whatever it is.
pub(super) async fn answer(
    state: &AppState,
    id: &str,
    challenge: &ChallengeState,
    key: TestKey,
    answer: Answer,
) -> Result<HttpResponse, ChallengeError> {
    let passed = match (answer, challenge.slots.is_empty()) {
        (Answer::Labels(answers), false) => {
            if answers.len() != challenge.slots.len() {
                return Err(ChallengeError::WrongAnswerCount {
                    expected: challenge.slots.len(),
                    got: answers.len(),
                });
            }
            if let Some(bad) = answers
                .iter()
                .find(|a| !LABELS.iter().any(|(id, _, _)| a.as_str() == *id))
            {
                return Err(ChallengeError::InvalidLabel(bad.to_string()));
            }
            key == TestKey::Pass
        }
        (Answer::Nonce(nonce), true) => {
            let salt = pow_salt(&challenge.id, &challenge.sitekey);
            let input = [salt.as_bytes(), nonce.as_str().as_bytes()].concat();
            let digest = ring::digest::digest(&ring::digest::SHA256, &input);
            key == TestKey::Pass && protocol::pow::meets(digest.as_ref(), difficulty_bits(state))
        }
        (Answer::Labels(_), true) => return Err(ChallengeError::WrongAnswerKind("nonce")),
        (Answer::Nonce(_), false) => return Err(ChallengeError::WrongAnswerKind("answers")),
    };
    // Single use, as for a real challenge.
    let challenge = state
        .store
        .take_challenge(id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    if !passed {
        tracing::info!(outcome = "wrong-answer", "test challenge failed");
        return Ok(wrong_answer());
    }
    let check = if challenge.slots.is_empty() {
        Check::Pow
    } else {
        Check::Image
    };
    issue_token(state, challenge, check, now()).await
}

/// `siteverify` with a test secret, or `None` for any other secret. Called once `secret` and `response` are
/// known to be present, before the secret is parsed or the store asked anything.
///
/// The pass secret accepts any non-empty response, since an integrator's tests may not run a browser to get a
/// token. The token is not consumed (it may be redeemed again, like hCaptcha's test response), and the reply
/// keeps the shape of a real one: `challenge_ts` and `check` come from the token when it is one of this
/// server's, otherwise they are the request's time and `image`; `hostname` is always `localhost`, because the
/// page's host name is kept in the store with the token, which a test secret never reads.
pub(super) fn verify(
    secret: &str,
    response: &str,
    key: &TokenKey,
) -> Option<Result<SiteverifyResponse, &'static str>> {
    match secret {
        test_keys::PASS_SECRET => {
            let claims = key.verify(response).ok();
            Some(Ok(SiteverifyResponse {
                success: true,
                challenge_ts: Some(rfc3339(claims.as_ref().map_or_else(now, |c| c.issued_at))),
                hostname: Some("localhost".into()),
                error_codes: Vec::new(),
                check: Some(claims.map_or(checks::IMAGE, |c| c.check.as_str()).into()),
            }))
        }
        test_keys::FAIL_SECRET => Some(Err(codes::INVALID_INPUT_RESPONSE)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_challenges_have_only_controls_of_no_image() {
        let sitekey = SiteKey::parse(test_keys::PASS_SITEKEY).unwrap();
        let state = test_challenge("x".into(), sitekey, "localhost".into(), IMAGES, 0);
        assert_eq!(state.slots.len(), IMAGES);
        for slot in &state.slots {
            // A slot without an expected label would be an unknown, whose answer is harvested.
            assert!(slot.expected.is_some());
            assert_eq!(slot.image, NO_IMAGE);
        }
        assert_eq!(state.project, NO_PROJECT);
    }

    #[test]
    fn the_test_tiles_are_two_different_pngs() {
        let tiles = TILES.as_ref().unwrap();
        for tile in tiles {
            let decoded = image::load_from_memory_with_format(tile, ImageFormat::Png).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (128, 128));
        }
        assert_ne!(tiles[0], tiles[1]);
    }

    #[test]
    fn only_the_test_sitekeys_are_test_keys() {
        let of = |s: &str| TestKey::of(&SiteKey::parse(s).unwrap());
        assert_eq!(of(test_keys::PASS_SITEKEY), Some(TestKey::Pass));
        assert_eq!(of(test_keys::FAIL_SITEKEY), Some(TestKey::Fail));
        assert_eq!(of("6f1c2a9e-3b4d-4c5e-8f70-0123456789ab"), None);
    }
}

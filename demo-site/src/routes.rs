//! The handlers: the form (`GET /`), its submission (`POST /`), the stylesheet and a health check.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::config::Settings;
use crate::form::{Field, FieldError, ReportForm, validate};
use crate::pages::{Alert, FormView, Verified, form_page, success_page};
use crate::verify::{Rejection, Verdict, judge, siteverify};

const STYLESHEET: &str = include_str!("../static/site.css");

pub async fn form(settings: web::Data<Settings>) -> HttpResponse {
    let values = ReportForm::default();
    html(
        StatusCode::OK,
        form_page(
            &settings,
            &FormView {
                values: &values,
                errors: &[],
                alert: None,
            },
        ),
    )
}

pub async fn submit(
    request: HttpRequest,
    settings: web::Data<Settings>,
    client: web::Data<awc::Client>,
    web::Form(values): web::Form<ReportForm>,
) -> HttpResponse {
    let token = values.cobot_response.trim();
    let validated = validate(&values);
    let mut errors = validated.as_ref().err().cloned().unwrap_or_default();
    if token.is_empty() {
        errors.push(rejection_error(Rejection::Missing));
    }
    // The token is redeemed only for a submission that is otherwise complete: a redeemed token is spent.
    let report = match validated {
        Ok(report) if errors.is_empty() => report,
        _ => {
            return again(
                &settings,
                &values,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let remote_ip = request.peer_addr().map(|addr| addr.ip());
    let verdict = match siteverify(&client, &settings, token, remote_ip).await {
        Ok(reply) => {
            let verdict = judge(&reply);
            if verdict == Verdict::Rejected(Rejection::Misconfigured) {
                tracing::error!(codes = ?reply.error_codes, "cobot refuses this site's sitekey or secret");
            }
            verdict
        }
        Err(err) => {
            tracing::error!(error = %anyhow_chain(&err), url = %settings.cobot_url, "siteverify failed");
            Verdict::Rejected(Rejection::Unavailable)
        }
    };
    match verdict {
        Verdict::Passed {
            challenge_ts,
            hostname,
        } => {
            tracing::info!(
                problem = report.problem.value(),
                hostname = hostname.as_deref(),
                "report accepted"
            );
            let verified = Verified {
                challenge_ts: challenge_ts.as_deref(),
                hostname: hostname.as_deref(),
            };
            html(StatusCode::OK, success_page(&settings, &report, &verified))
        }
        Verdict::Rejected(rejection @ (Rejection::Misconfigured | Rejection::Unavailable)) => {
            tracing::info!(?rejection, "report refused: check service");
            again(
                &settings,
                &values,
                &[],
                Some(service_alert(rejection)),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
        Verdict::Rejected(rejection) => {
            tracing::info!(?rejection, "report refused: check not passed");
            again(
                &settings,
                &values,
                &[rejection_error(rejection)],
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

fn again(
    settings: &Settings,
    values: &ReportForm,
    errors: &[FieldError],
    alert: Option<Alert>,
    status: StatusCode,
) -> HttpResponse {
    html(
        status,
        form_page(
            settings,
            &FormView {
                values,
                errors,
                alert,
            },
        ),
    )
}

/// The message shown next to the widget when the check itself is the problem.
pub fn rejection_error(rejection: Rejection) -> FieldError {
    let message = match rejection {
        Rejection::Missing => {
            "Veuillez confirmer que vous n’êtes pas un robot\u{a0}: répondez à la question de vérification."
        }
        Rejection::Expired => {
            "La vérification a expiré ou a déjà servi. Veuillez la refaire, puis renvoyer le signalement."
        }
        Rejection::Invalid => "La vérification n’a pas pu être validée. Veuillez la refaire.",
        Rejection::Misconfigured | Rejection::Unavailable => {
            "La vérification n’a pas pu être contrôlée. Veuillez réessayer dans quelques instants."
        }
    };
    FieldError::new(Field::Verification, message)
}

fn service_alert(rejection: Rejection) -> Alert {
    let text = if rejection == Rejection::Misconfigured {
        "Le service de vérification refuse la configuration de ce site. Réessayez plus tard\u{a0}; \
         si le problème persiste, contactez la mairie."
    } else {
        "Le service de vérification ne répond pas pour le moment. Vos saisies sont conservées\u{a0}: \
         réessayez dans quelques instants."
    };
    Alert {
        title: "Votre signalement n’a pas été transmis".into(),
        text: text.into(),
    }
}

fn anyhow_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        // Pages echo what the visitor typed: keep them out of shared caches.
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("ok")
}

//! The pages, as strings: the report form (empty, or again with its errors) and the confirmation.
//!
//! Accessibility follows the State design system's patterns: a skip link, one `h1`, labels with hints,
//! errors linked from a summary that takes the focus, `aria-invalid` and `aria-describedby` on fields,
//! the page title prefixed with “Erreur” when the form comes back.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Settings;
use crate::form::{DESCRIPTION_MAX, Field, FieldError, PLACE_MAX, Problem, Report, ReportForm};
use crate::html::escape;

const SERVICE: &str = "Ville de Démoville";
const TITLE: &str = "Signaler un problème sur la voirie";

/// A message about the whole submission rather than one field (the check service failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub title: String,
    pub text: String,
}

pub struct FormView<'a> {
    pub values: &'a ReportForm,
    pub errors: &'a [FieldError],
    pub alert: Option<Alert>,
}

/// The check as `siteverify` described it.
pub struct Verified<'a> {
    pub challenge_ts: Option<&'a str>,
    pub hostname: Option<&'a str>,
}

fn layout(settings: &Settings, title: &str, main: &str) -> String {
    let widget = format!("{}/widget.js", settings.public_url);
    format!(
        r##"<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/site.css">
<script src="{widget}" async defer></script>
</head>
<body>
<div class="skiplinks"><a href="#contenu">Aller au contenu</a></div>
<header class="header" role="banner">
<div class="container header__body">
<div class="brand">
<p class="logo" aria-hidden="false"><span class="logo__bar" aria-hidden="true"></span>République<br>française<span class="logo__motto">Liberté<br>Égalité<br>Fraternité</span></p>
<div class="service">
<a class="service__title" href="/" title="Accueil — {service}">{service}</a>
<p class="service__tagline">Services en ligne de la voirie</p>
</div>
</div>
<p class="badge">Démonstration</p>
</div>
</header>
<main id="contenu" tabindex="-1" class="container main">
{main}
</main>
<footer class="footer" role="contentinfo">
<div class="container">
<p><strong>{service}</strong> — site de démonstration de Cobot. Aucun signalement n’est réellement transmis.</p>
<p>Ce site ne dépose aucun cookie et ne fait appel à aucun service tiers. La vérification anti-robot est hébergée par la collectivité.</p>
</div>
</footer>
</body>
</html>
"##,
        title = escape(title),
        widget = escape(&widget),
        service = SERVICE,
        main = main,
    )
}

/// The form, empty or with the visitor's values and errors.
pub fn form_page(settings: &Settings, view: &FormView<'_>) -> String {
    let has_errors = !view.errors.is_empty() || view.alert.is_some();
    let mut main = String::new();
    let _ = writeln!(main, "<h1>{TITLE}</h1>");
    let _ = writeln!(
        main,
        "<p class=\"lead\">Un trou dans la chaussée, un lampadaire éteint, un panneau tombé\u{a0}? \
         Signalez-le aux services techniques de la ville.</p>"
    );
    if has_errors {
        main.push_str(&error_summary(view));
    }
    let _ = writeln!(
        main,
        "<p class=\"hint\">Sauf mention contraire, tous les champs sont obligatoires.</p>"
    );
    main.push_str("<form method=\"post\" action=\"/\" novalidate>\n");

    main.push_str("<fieldset class=\"fieldset\">\n<legend class=\"fieldset__legend\">Le problème</legend>\n");
    main.push_str(&problem_select(view));
    main.push_str(&text_input(
        view,
        Field::Lieu,
        "Adresse ou lieu",
        "Par exemple\u{a0}: 12 rue de la République, ou «\u{a0}devant l’école Jules-Ferry\u{a0}».",
        &view.values.lieu,
        &format!("type=\"text\" maxlength=\"{PLACE_MAX}\" required"),
    ));
    main.push_str(&textarea(view));
    main.push_str("</fieldset>\n");

    main.push_str(
        "<fieldset class=\"fieldset\">\n<legend class=\"fieldset__legend\">Pour être tenu informé</legend>\n",
    );
    main.push_str(&text_input(
        view,
        Field::Courriel,
        "Adresse électronique (facultatif)",
        "Pour recevoir une réponse quand le problème est traité. Format attendu\u{a0}: nom@domaine.fr",
        &view.values.courriel,
        "type=\"email\" autocomplete=\"email\" spellcheck=\"false\"",
    ));
    main.push_str("</fieldset>\n");

    main.push_str(&verification_group(settings, view));
    main.push_str(
        "<div class=\"actions\"><button type=\"submit\" class=\"button\">Envoyer le signalement</button></div>\n</form>\n",
    );
    let title = if has_errors {
        format!("Erreur\u{a0}: {TITLE} — {SERVICE}")
    } else {
        format!("{TITLE} — {SERVICE}")
    };
    layout(settings, &title, &main)
}

fn error_summary(view: &FormView<'_>) -> String {
    let count = view.errors.len();
    let mut html = String::from(
        "<div class=\"error-summary\" role=\"alert\" aria-labelledby=\"error-summary-title\" tabindex=\"-1\" autofocus>\n",
    );
    match (&view.alert, count) {
        (Some(alert), _) => {
            let _ = writeln!(
                html,
                "<h2 id=\"error-summary-title\">{}</h2>",
                escape(&alert.title)
            );
            let _ = writeln!(html, "<p>{}</p>", escape(&alert.text));
        }
        (None, 1) => html.push_str("<h2 id=\"error-summary-title\">Le formulaire comporte une erreur</h2>\n"),
        (None, n) => {
            let _ = writeln!(
                html,
                "<h2 id=\"error-summary-title\">Le formulaire comporte {n}\u{a0}erreurs</h2>"
            );
        }
    }
    if count > 0 {
        html.push_str("<ul>\n");
        for error in view.errors {
            let _ = writeln!(
                html,
                "<li><a href=\"#{}\">{}</a></li>",
                error.field.id(),
                escape(&error.message)
            );
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</div>\n");
    html
}

fn error_for<'a>(view: &'a FormView<'_>, field: Field) -> Option<&'a FieldError> {
    view.errors.iter().find(|e| e.field == field)
}

/// The `aria-*` attributes, the group's class and the error paragraph of one field.
fn field_state(view: &FormView<'_>, field: Field) -> (String, &'static str, String) {
    let id = field.id();
    match error_for(view, field) {
        Some(error) => (
            format!(" aria-describedby=\"{id}-hint {id}-error\" aria-invalid=\"true\""),
            " field--error",
            format!(
                "<p class=\"error-message\" id=\"{id}-error\"><span class=\"visually-hidden\">Erreur\u{a0}: </span>{}</p>\n",
                escape(&error.message)
            ),
        ),
        None => (format!(" aria-describedby=\"{id}-hint\""), "", String::new()),
    }
}

fn problem_select(view: &FormView<'_>) -> String {
    let field = Field::Probleme;
    let id = field.id();
    let (aria, class, error) = field_state(view, field);
    let mut options = String::from("<option value=\"\">Sélectionner un type de problème</option>\n");
    for problem in Problem::ALL {
        let selected = if view.values.probleme == problem.value() {
            " selected"
        } else {
            ""
        };
        let _ = writeln!(
            options,
            "<option value=\"{}\"{selected}>{}</option>",
            problem.value(),
            problem.label()
        );
    }
    format!(
        "<div class=\"field{class}\">\n<label class=\"label\" for=\"{id}\">Type de problème\
         <span class=\"hint\" id=\"{id}-hint\">Choisissez la catégorie la plus proche.</span></label>\n\
         {error}<select class=\"select\" id=\"{id}\" name=\"{id}\" required{aria}>\n{options}</select>\n</div>\n"
    )
}

fn text_input(
    view: &FormView<'_>,
    field: Field,
    label: &str,
    hint: &str,
    value: &str,
    attributes: &str,
) -> String {
    let id = field.id();
    let (aria, class, error) = field_state(view, field);
    format!(
        "<div class=\"field{class}\">\n<label class=\"label\" for=\"{id}\">{label}\
         <span class=\"hint\" id=\"{id}-hint\">{hint}</span></label>\n\
         {error}<input class=\"input\" id=\"{id}\" name=\"{id}\" {attributes} value=\"{value}\"{aria}>\n</div>\n",
        label = escape(label),
        hint = escape(hint),
        value = escape(value),
    )
}

fn textarea(view: &FormView<'_>) -> String {
    let field = Field::Description;
    let id = field.id();
    let (aria, class, error) = field_state(view, field);
    format!(
        "<div class=\"field{class}\">\n<label class=\"label\" for=\"{id}\">Description\
         <span class=\"hint\" id=\"{id}-hint\">Ce que vous avez constaté, depuis quand, s’il y a un danger. \
         1\u{202f}000\u{a0}caractères au plus.</span></label>\n\
         {error}<textarea class=\"input\" id=\"{id}\" name=\"{id}\" rows=\"5\" maxlength=\"{DESCRIPTION_MAX}\" required{aria}>{value}</textarea>\n</div>\n",
        value = escape(&view.values.description),
    )
}

fn verification_group(settings: &Settings, view: &FormView<'_>) -> String {
    let field = Field::Verification;
    let id = field.id();
    let (_, class, error) = field_state(view, field);
    let again = if view.errors.is_empty() && view.alert.is_none() {
        ""
    } else {
        "<p class=\"hint\">Par sécurité, la vérification est à refaire à chaque envoi du formulaire.</p>\n"
    };
    format!(
        "<div class=\"field verification{class}\" id=\"{id}\" role=\"group\" aria-labelledby=\"{id}-title\" tabindex=\"-1\">\n\
         <p class=\"label\" id=\"{id}-title\">Vérification anti-robot</p>\n\
         <p class=\"hint\" id=\"{id}-hint\">Répondez à la question en images pour montrer que vous n’êtes pas un robot. \
         Vos réponses aident aussi à repérer les toits favorables au solaire. Un parcours sans images est proposé.</p>\n\
         {again}{error}<div class=\"cobot-captcha\" data-sitekey=\"{sitekey}\"></div>\n\
         <noscript><p class=\"error-message\">La vérification nécessite JavaScript\u{a0}: activez-le pour envoyer le signalement.</p></noscript>\n\
         </div>\n",
        sitekey = escape(&settings.sitekey),
    )
}

/// The confirmation, with a recap of what was sent and of the check.
pub fn success_page(settings: &Settings, report: &Report, verified: &Verified<'_>) -> String {
    let mut main = String::new();
    main.push_str(
        "<div class=\"alert alert--success\" role=\"status\">\n<h1>Votre signalement a bien été transmis</h1>\n\
         <p>Merci. Les services techniques de la ville vont l’examiner.</p>\n</div>\n",
    );
    main.push_str("<h2>Récapitulatif</h2>\n<dl class=\"recap\">\n");
    let email = report.email.as_deref().unwrap_or("Non renseignée");
    for (term, value) in [
        ("Type de problème", report.problem.label()),
        ("Adresse ou lieu", report.place.as_str()),
        ("Description", report.description.as_str()),
        ("Adresse électronique", email),
    ] {
        let _ = writeln!(main, "<dt>{term}</dt><dd>{}</dd>", escape(value));
    }
    main.push_str("</dl>\n<h2>Vérification anti-robot</h2>\n");
    let when = verified
        .challenge_ts
        .map_or_else(|| "à une date non précisée".to_owned(), french_time);
    let host = verified.hostname.map_or_else(String::new, |h| {
        format!(" sur le site <strong>{}</strong>", escape(h))
    });
    let _ = writeln!(main, "<p class=\"verified\">Réussie {}{host}.</p>", escape(&when));
    main.push_str("<p><a class=\"link\" href=\"/\">Faire un autre signalement</a></p>\n");
    layout(settings, &format!("Signalement transmis — {SERVICE}"), &main)
}

/// `2026-03-12T14:05:09Z` as “le 12 mars 2026 à 14:05:09 (UTC)”; anything unparsable is shown as given.
pub fn french_time(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    match OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let month = MONTHS[usize::from(u8::from(t.month())) - 1];
            let day = if t.day() == 1 {
                "1er".to_owned()
            } else {
                t.day().to_string()
            };
            format!(
                "le {day}\u{a0}{month} {} à {:02}:{:02}:{:02} (UTC)",
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => format!("(horodatage\u{a0}: {rfc3339})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings() -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            public_url: "http://cobot.test:8080".into(),
            cobot_url: "http://cobot.test:8080".into(),
            sitekey: "6f1c2a9e-3b4d-4c5e-8f70-0123456789ab".into(),
            secret: Secret::new("0xsecret"),
        }
    }

    fn empty_view(values: &ReportForm) -> FormView<'_> {
        FormView {
            values,
            errors: &[],
            alert: None,
        }
    }

    #[test]
    fn the_form_embeds_the_widget_as_an_integrator_would() {
        let html = form_page(&settings(), &empty_view(&ReportForm::default()));
        assert!(html.contains(r#"<script src="http://cobot.test:8080/widget.js" async defer></script>"#));
        let form = &html[html.find("<form").unwrap()..html.find("</form>").unwrap()];
        assert!(form.contains(
            r#"<div class="cobot-captcha" data-sitekey="6f1c2a9e-3b4d-4c5e-8f70-0123456789ab"></div>"#
        ));
        assert!(form.contains(r#"<button type="submit" class="button">Envoyer le signalement</button>"#));
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"fr\">"));
        assert!(!html.contains("0xsecret"), "the secret must never reach the page");
    }

    #[test]
    fn every_input_has_a_label_a_name_and_a_hint() {
        let html = form_page(&settings(), &empty_view(&ReportForm::default()));
        for id in ["probleme", "lieu", "description", "courriel"] {
            assert!(
                html.contains(&format!(r#"<label class="label" for="{id}">"#)),
                "{id}"
            );
            assert!(html.contains(&format!(r#"id="{id}" name="{id}""#)), "{id}");
            assert!(html.contains(&format!(r#"aria-describedby="{id}-hint""#)), "{id}");
        }
        assert!(!html.contains("error-summary"));
        assert!(!html.contains("aria-invalid"));
    }

    #[test]
    fn values_are_kept_and_escaped() {
        let values = ReportForm {
            probleme: "depot".into(),
            lieu: r#""><script>alert(1)</script>"#.into(),
            description: "</textarea><img src=x onerror=alert(1)>".into(),
            courriel: "a'b@c.fr".into(),
            cobot_response: String::new(),
        };
        let html = form_page(&settings(), &empty_view(&values));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img src=x"));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
        assert!(html.contains("&lt;/textarea&gt;&lt;img src=x onerror=alert(1)&gt;</textarea>"));
        assert!(html.contains(r#"<option value="depot" selected>"#));
        assert!(html.contains("value=\"a&#39;b@c.fr\""));
    }

    #[test]
    fn errors_are_summarised_linked_and_attached_to_their_fields() {
        let errors = [
            FieldError::new(Field::Lieu, "Indiquez l’adresse ou le lieu du problème."),
            FieldError::new(
                Field::Verification,
                "Veuillez confirmer que vous n’êtes pas un robot.",
            ),
        ];
        let values = ReportForm::default();
        let html = form_page(
            &settings(),
            &FormView {
                values: &values,
                errors: &errors,
                alert: None,
            },
        );
        assert!(html.contains("<title>Erreur\u{a0}: "));
        assert!(html.contains("Le formulaire comporte 2\u{a0}erreurs"));
        assert!(html.contains(r##"<a href="#lieu">Indiquez l’adresse ou le lieu du problème.</a>"##));
        assert!(html.contains(r##"<a href="#verification">Veuillez confirmer"##));
        assert!(html.contains(r#"aria-describedby="lieu-hint lieu-error" aria-invalid="true""#));
        assert!(html.contains(r#"id="verification" role="group""#));
        assert!(
            html.contains(r#"tabindex="-1" autofocus"#),
            "the summary takes the focus"
        );
    }

    #[test]
    fn an_alert_replaces_the_error_count() {
        let values = ReportForm::default();
        let alert = Alert {
            title: "Service <indisponible>".into(),
            text: "Réessayez.".into(),
        };
        let html = form_page(
            &settings(),
            &FormView {
                values: &values,
                errors: &[],
                alert: Some(alert),
            },
        );
        assert!(html.contains("<h2 id=\"error-summary-title\">Service &lt;indisponible&gt;</h2>"));
    }

    #[test]
    fn the_confirmation_recaps_the_report_and_the_check() {
        let report = Report {
            problem: Problem::Eclairage,
            place: "3 rue des <Lilas>".into(),
            description: "Lampadaire éteint".into(),
            email: None,
        };
        let verified = Verified {
            challenge_ts: Some("2026-03-01T14:05:09Z"),
            hostname: Some("mairie.test"),
        };
        let html = success_page(&settings(), &report, &verified);
        assert!(html.contains("<h1>Votre signalement a bien été transmis</h1>"));
        assert!(html.contains("<dd>3 rue des &lt;Lilas&gt;</dd>"));
        assert!(html.contains("<dd>Éclairage public en panne</dd>"));
        assert!(html.contains("<dd>Non renseignée</dd>"));
        assert!(html.contains("le 1er\u{a0}mars 2026 à 14:05:09 (UTC)"));
        assert!(html.contains("<strong>mairie.test</strong>"));
    }

    #[test]
    fn times_are_written_the_french_way() {
        assert_eq!(
            french_time("2026-12-24T23:59:01+01:00"),
            "le 24\u{a0}décembre 2026 à 22:59:01 (UTC)"
        );
        assert_eq!(french_time("hier"), "(horodatage\u{a0}: hier)");
    }
}

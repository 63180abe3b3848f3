//! The report form: what the browser posts, and its validation into a [`Report`] or a list of field errors.
//! Messages are those a French public service would show (what is wrong and how to fix it).

use serde::Deserialize;

/// The body the browser posts, as it comes: every field optional so that a missing one is a field error,
/// not a 400 page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ReportForm {
    #[serde(default)]
    pub probleme: String,
    #[serde(default)]
    pub lieu: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub courriel: String,
    /// Filled by the Cobot widget once the visitor passed the check.
    #[serde(default, rename = "cobot-response")]
    pub cobot_response: String,
}

/// The kinds of problem the service handles, in the order of the select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Chaussee,
    Eclairage,
    Signalisation,
    Depot,
    Trottoir,
    Autre,
}

impl Problem {
    pub const ALL: [Problem; 6] = [
        Problem::Chaussee,
        Problem::Eclairage,
        Problem::Signalisation,
        Problem::Depot,
        Problem::Trottoir,
        Problem::Autre,
    ];

    /// The `value` of the option.
    pub const fn value(self) -> &'static str {
        match self {
            Problem::Chaussee => "chaussee",
            Problem::Eclairage => "eclairage",
            Problem::Signalisation => "signalisation",
            Problem::Depot => "depot",
            Problem::Trottoir => "trottoir",
            Problem::Autre => "autre",
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Problem::Chaussee => "Chaussée abîmée, nid-de-poule",
            Problem::Eclairage => "Éclairage public en panne",
            Problem::Signalisation => "Panneau ou feu tricolore endommagé",
            Problem::Depot => "Dépôt sauvage, encombrant",
            Problem::Trottoir => "Trottoir dégradé ou encombré",
            Problem::Autre => "Autre problème",
        }
    }

    pub fn from_value(value: &str) -> Option<Self> {
        Problem::ALL.into_iter().find(|p| p.value() == value)
    }
}

/// The form's fields; the `id` is also the input's `name`, and the target of the error summary's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Probleme,
    Lieu,
    Description,
    Courriel,
    /// The group that holds the Cobot widget.
    Verification,
}

impl Field {
    pub const fn id(self) -> &'static str {
        match self {
            Field::Probleme => "probleme",
            Field::Lieu => "lieu",
            Field::Description => "description",
            Field::Courriel => "courriel",
            Field::Verification => "verification",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A valid report, ready to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub problem: Problem,
    pub place: String,
    pub description: String,
    pub email: Option<String>,
}

pub const PLACE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 1000;
const EMAIL_MAX: usize = 254;

/// Checks the visitor's fields (not the Cobot check, which needs the network: see `verify`).
pub fn validate(form: &ReportForm) -> Result<Report, Vec<FieldError>> {
    let mut errors = Vec::new();
    let problem = Problem::from_value(form.probleme.trim());
    if problem.is_none() {
        errors.push(FieldError::new(
            Field::Probleme,
            "Sélectionnez le type de problème.",
        ));
    }
    let place = form.lieu.trim();
    if place.is_empty() {
        errors.push(FieldError::new(
            Field::Lieu,
            "Indiquez l’adresse ou le lieu du problème.",
        ));
    } else if place.chars().count() > PLACE_MAX {
        errors.push(FieldError::new(
            Field::Lieu,
            "L’adresse ou le lieu doit faire 200\u{a0}caractères au plus.",
        ));
    }
    let description = form.description.trim();
    if description.is_empty() {
        errors.push(FieldError::new(
            Field::Description,
            "Décrivez le problème en quelques mots.",
        ));
    } else if description.chars().count() > DESCRIPTION_MAX {
        errors.push(FieldError::new(
            Field::Description,
            "La description doit faire 1\u{202f}000\u{a0}caractères au plus.",
        ));
    }
    let email = form.courriel.trim();
    if !email.is_empty() && !looks_like_email(email) {
        errors.push(FieldError::new(
            Field::Courriel,
            "Le format de l’adresse électronique est incorrect. Format attendu\u{a0}: nom@domaine.fr",
        ));
    }
    match problem {
        Some(problem) if errors.is_empty() => Ok(Report {
            problem,
            place: place.to_owned(),
            description: description.to_owned(),
            email: (!email.is_empty()).then(|| email.to_owned()),
        }),
        _ => Err(errors),
    }
}

/// The same loose check browsers apply to `type="email"`: something, an at sign, a domain with a dot.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= EMAIL_MAX
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> ReportForm {
        ReportForm {
            probleme: "eclairage".into(),
            lieu: " 3 rue des Lilas ".into(),
            description: "Le lampadaire devant le n° 3 ne s’allume plus.".into(),
            courriel: String::new(),
            cobot_response: "tok".into(),
        }
    }

    #[test]
    fn a_complete_form_becomes_a_report_with_trimmed_fields() {
        let report = validate(&filled()).unwrap();
        assert_eq!(report.problem, Problem::Eclairage);
        assert_eq!(report.place, "3 rue des Lilas");
        assert_eq!(report.email, None);
    }

    #[test]
    fn an_empty_form_reports_each_required_field_in_page_order() {
        let errors = validate(&ReportForm::default()).unwrap_err();
        let fields: Vec<Field> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, [Field::Probleme, Field::Lieu, Field::Description]);
    }

    #[test]
    fn an_unknown_problem_value_is_refused() {
        let errors = validate(&ReportForm {
            probleme: "<script>".into(),
            ..filled()
        })
        .unwrap_err();
        assert_eq!(errors[0].field, Field::Probleme);
    }

    #[test]
    fn the_email_is_optional_but_checked_when_given() {
        assert!(
            validate(&ReportForm {
                courriel: "marie@exemple.fr".into(),
                ..filled()
            })
            .is_ok()
        );
        for bad in [
            "marie",
            "marie@",
            "@exemple.fr",
            "marie@exemple",
            "ma rie@exemple.fr",
        ] {
            let errors = validate(&ReportForm {
                courriel: bad.into(),
                ..filled()
            })
            .unwrap_err();
            assert_eq!(errors[0].field, Field::Courriel, "{bad}");
        }
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let long = "é".repeat(DESCRIPTION_MAX);
        assert!(
            validate(&ReportForm {
                description: long.clone(),
                ..filled()
            })
            .is_ok()
        );
        let too_long = long + "é";
        assert_eq!(
            validate(&ReportForm {
                description: too_long,
                ..filled()
            })
            .unwrap_err()[0]
                .field,
            Field::Description
        );
    }
}

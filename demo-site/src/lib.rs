//! A demo public-service website: “Signaler un problème sur la voirie”, a form that embeds the Cobot
//! widget and redeems its token with `POST /siteverify`, exactly as a site integrator would (own markup,
//! own HTTP client, own parsing of the reply: nothing here uses Cobot's crates).
//!
//! The pages follow the look of the French State design system without using any of its files: no
//! external font, stylesheet or script, no cookie. Everything the visitor typed is escaped before it is
//! echoed back.

mod config;
mod form;
mod html;
mod pages;
mod routes;
mod startup;
mod verify;

pub use config::{Args, ConfigError, Secret, Settings};
pub use form::{Field, FieldError, Problem, Report, ReportForm};
pub use html::escape;
pub use startup::Application;
pub use verify::{Rejection, SiteverifyReply, Verdict};

//! Everything that touches the integrator's page: reading the widget's settings from the host `<div>` and
//! the `render` options, the hidden response field in the light DOM, the integrator's callbacks and the
//! `cobot:*` DOM events.

use js_sys::{Function, Object, Reflect};
use protocol::{Lang, SiteKey};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CustomEvent, CustomEventInit, Element, HtmlElement, HtmlInputElement};

/// The default name of the hidden field, as `h-captcha-response` is hCaptcha's.
pub const DEFAULT_FIELD_NAME: &str = "cobot-response";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Theme {
    /// Follows `prefers-color-scheme`.
    #[default]
    Auto,
    Light,
    Dark,
}

impl Theme {
    fn parse(s: &str) -> Self {
        match s {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::Auto,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// One widget's settings, read once when it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The Cobot server's base URL, without a trailing slash.
    pub base: String,
    /// `None` when the integrator gave none or a malformed one: the widget then says it is misconfigured.
    pub sitekey: Option<SiteKey>,
    pub lang: Lang,
    pub theme: Theme,
    pub field_name: String,
    /// Each a function or the name of a global function, as in reCAPTCHA and hCaptcha.
    pub callback: JsValue,
    pub expired_callback: JsValue,
    pub error_callback: JsValue,
}

impl Config {
    /// Reads the settings: `options` (from `cobot.render(el, options)`) wins over the `data-*` attributes.
    pub fn read(base: &str, host: &Element, options: &JsValue) -> Self {
        let option = |keys: &[&str]| -> JsValue {
            keys.iter()
                .map(|k| Reflect::get(options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED))
                .find(|v| !v.is_undefined() && !v.is_null())
                .unwrap_or(JsValue::UNDEFINED)
        };
        let text = |keys: &[&str], attr: &str| -> Option<String> {
            option(keys).as_string().or_else(|| host.get_attribute(attr))
        };
        let callback = |keys: &[&str], attr: &str| -> JsValue {
            let v = option(keys);
            if v.is_undefined() {
                host.get_attribute(attr).map_or(JsValue::UNDEFINED, JsValue::from)
            } else {
                v
            }
        };
        Config {
            base: base.to_owned(),
            sitekey: text(&["sitekey"], "data-sitekey").and_then(|k| SiteKey::parse(k.trim()).ok()),
            lang: text(&["lang", "hl"], "data-lang")
                .map(|l| Lang::from_tag(&l))
                .unwrap_or_default(),
            theme: text(&["theme"], "data-theme")
                .map(|t| Theme::parse(&t))
                .unwrap_or_default(),
            field_name: text(
                &["response-field-name", "responseFieldName"],
                "data-response-field-name",
            )
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_FIELD_NAME.into()),
            callback: callback(&["callback"], "data-callback"),
            expired_callback: callback(&["expired-callback", "expiredCallback"], "data-expired-callback"),
            error_callback: callback(&["error-callback", "errorCallback"], "data-error-callback"),
        }
    }
}

/// The hidden `<input>` that carries the token with the form. It lives in the light DOM, as a child of the
/// host `<div>`: the shadow root does not render it, but the enclosing form submits it.
pub fn response_field(host: &Element, name: &str) -> Option<HtmlInputElement> {
    let existing = (0..host.children().length())
        .filter_map(|i| host.children().item(i))
        .filter_map(|e| e.dyn_into::<HtmlInputElement>().ok())
        .find(|input| input.name() == name);
    if existing.is_some() {
        return existing;
    }
    let input: HtmlInputElement = host
        .owner_document()?
        .create_element("input")
        .ok()?
        .dyn_into()
        .ok()?;
    input.set_type("hidden");
    input.set_name(name);
    host.append_child(&input).ok()?;
    Some(input)
}

/// Sets the hidden field (an empty string clears it).
pub fn set_response(host: &Element, config: &Config, token: &str) {
    if let Some(field) = response_field(host, &config.field_name) {
        field.set_value(token);
    }
}

/// The token currently in the hidden field, empty when there is none.
pub fn response(host: &Element, config: &Config) -> String {
    response_field(host, &config.field_name)
        .map(|f| f.value())
        .unwrap_or_default()
}

/// Calls an integrator callback given as a function or a global function's name. What it throws is its own
/// business: it must not break the widget.
pub fn call(callback: &JsValue, arg: Option<&str>) {
    let function = match callback.as_string() {
        Some(name) => web_sys::window().and_then(|w| Reflect::get(&w, &JsValue::from_str(&name)).ok()),
        None => Some(callback.clone()),
    };
    if let Some(f) = function.and_then(|f| f.dyn_into::<Function>().ok()) {
        let _ = match arg {
            Some(a) => f.call1(&JsValue::NULL, &JsValue::from_str(a)),
            None => f.call0(&JsValue::NULL),
        };
    }
}

/// Dispatches `cobot:<name>` on the host element, bubbling out of the shadow root, with `detail[key] = value`.
pub fn emit(host: &HtmlElement, name: &str, detail: Option<(&str, &str)>) {
    let init = CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    let object = Object::new();
    if let Some((key, value)) = detail {
        let _ = Reflect::set(&object, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    init.set_detail(&object);
    let mut type_ = String::with_capacity(6 + name.len());
    type_.push_str("cobot:");
    type_.push_str(name);
    if let Ok(event) = CustomEvent::new_with_event_init_dict(&type_, &init) {
        let _ = host.dispatch_event(&event);
    }
}

//! The Cobot widget: a Yew component compiled to wasm, which the loader (`loader/widget.js`) starts.
//!
//! Hand-off: the loader finds the server's base URL from its own `<script src>`, imports the wasm-bindgen
//! glue from `{base}/widget/`, initialises the module and calls [`start`] with that base URL; [`start`]
//! renders every `.cobot-captcha` element unless the page asked for `render=explicit`. The loader then
//! exposes [`render`], [`reset`], [`get_response`] and [`remove`] as `window.cobot`.
//!
//! Each widget renders in an open shadow root of its host `<div>` (the page's CSS cannot reach in, ours
//! cannot leak out) and keeps its token in a hidden `<input>` in the light DOM, where the form submits it.

// A simpler allocator than the default dlmalloc: the widget allocates little, and every byte of wasm is
// downloaded by every citizen. It coalesces freed blocks, so a long-lived page does not leak.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

pub mod app;
pub mod hooks;
pub mod host;
pub mod i18n;
pub mod services;
pub mod state;
pub mod view;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{Element, HtmlElement, ShadowRootInit, ShadowRootMode};
use yew::AppHandle;

use crate::app::{Captcha, CaptchaProps};
use crate::host::Config;

/// One rendered widget. Its id is its index in the registry; removed widgets leave a `None`.
struct Mounted {
    host: HtmlElement,
    options: JsValue,
    config: Rc<Config>,
    app: AppHandle<Captcha>,
}

thread_local! {
    static BASE: RefCell<String> = const { RefCell::new(String::new()) };
    static WIDGETS: RefCell<Vec<Option<Mounted>>> = const { RefCell::new(Vec::new()) };
}

/// Called once by the loader: remembers the server's base URL and renders the page's widgets unless
/// `explicit` (the script URL said `render=explicit`).
#[wasm_bindgen]
pub fn start(base: &str, explicit: bool) {
    BASE.with(|b| base.trim_end_matches('/').clone_into(&mut b.borrow_mut()));
    if explicit {
        return;
    }
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Ok(hosts) = document.query_selector_all(".cobot-captcha") {
        for i in 0..hosts.length() {
            if let Some(host) = hosts.item(i).and_then(|n| n.dyn_into::<HtmlElement>().ok()) {
                let _ = render(&host.into(), JsValue::UNDEFINED);
            }
        }
    }
}

/// `cobot.render(container, options)`: `container` is an element or its id. Returns the widget id. Rendering
/// an element twice returns the id it already has.
#[wasm_bindgen]
pub fn render(container: &JsValue, options: JsValue) -> Result<u32, JsError> {
    let host = find_host(container).ok_or_else(|| JsError::new("cobot: container element not found"))?;
    if let Some(id) = WIDGETS.with(|w| {
        w.borrow()
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.host == host))
    }) {
        return Ok(index_to_id(id));
    }
    let base = BASE.with(|b| b.borrow().clone());
    let (config, app) = mount(&base, &host, &options)?;
    let mounted = Mounted {
        host,
        options,
        config,
        app,
    };
    Ok(WIDGETS.with(|w| {
        let mut w = w.borrow_mut();
        w.push(Some(mounted));
        index_to_id(w.len() - 1)
    }))
}

/// Renders a widget into `host` with the server at `base`; what [`render`] does once the id is assigned.
/// Public so that component tests can mount a widget without the loader.
pub fn mount(
    base: &str,
    host: &HtmlElement,
    options: &JsValue,
) -> Result<(Rc<Config>, AppHandle<Captcha>), JsError> {
    let config = Rc::new(Config::read(base, host, options));
    let shadow = match host.shadow_root() {
        Some(shadow) => shadow,
        None => host
            .attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))
            .map_err(|_| JsError::new("cobot: this element cannot hold a shadow root (use a <div>)"))?,
    };
    shadow.set_inner_html("");
    let root: Element = host
        .owner_document()
        .and_then(|d| d.create_element("div").ok())
        .ok_or_else(|| JsError::new("cobot: no document"))?;
    shadow
        .append_child(&root)
        .map_err(|_| JsError::new("cobot: cannot render"))?;
    host::set_response(host, &config, "");
    let props = CaptchaProps {
        config: config.clone(),
        host: host.clone(),
    };
    Ok((
        config,
        yew::Renderer::<Captcha>::with_root_and_props(root, props).render(),
    ))
}

/// `cobot.reset(id?)`: clears the token and starts a new check (the first widget when no id is given).
#[wasm_bindgen]
pub fn reset(id: Option<u32>) -> Result<(), JsError> {
    let Some(index) = find(id) else { return Ok(()) };
    let Some(old) = WIDGETS.with(|w| w.borrow_mut().get_mut(index).and_then(Option::take)) else {
        return Ok(());
    };
    old.app.destroy();
    let base = BASE.with(|b| b.borrow().clone());
    let (config, app) = mount(&base, &old.host, &old.options)?;
    let mounted = Mounted {
        host: old.host,
        options: old.options,
        config,
        app,
    };
    WIDGETS.with(|w| {
        if let Some(slot) = w.borrow_mut().get_mut(index) {
            *slot = Some(mounted);
        }
    });
    Ok(())
}

/// `cobot.getResponse(id?)`: the current token, or `""` when the check is not (or no longer) passed.
#[wasm_bindgen(js_name = getResponse)]
pub fn get_response(id: Option<u32>) -> String {
    let Some(index) = find(id) else {
        return String::new();
    };
    WIDGETS.with(|w| {
        w.borrow()
            .get(index)
            .and_then(Option::as_ref)
            .map(|m| host::response(&m.host, &m.config))
            .unwrap_or_default()
    })
}

/// `cobot.remove(id?)`: takes the widget and its hidden field off the page.
#[wasm_bindgen]
pub fn remove(id: Option<u32>) {
    let Some(index) = find(id) else { return };
    let Some(old) = WIDGETS.with(|w| w.borrow_mut().get_mut(index).and_then(Option::take)) else {
        return;
    };
    old.app.destroy();
    if let Some(shadow) = old.host.shadow_root() {
        shadow.set_inner_html("");
    }
    if let Some(field) = host::response_field(&old.host, &old.config.field_name) {
        field.remove();
    }
}

/// The registry index of widget `id`, or of the first live widget when `id` is absent.
fn find(id: Option<u32>) -> Option<usize> {
    WIDGETS.with(|w| {
        let w = w.borrow();
        match id {
            Some(id) => {
                let index = usize::try_from(id).ok()?.checked_sub(1)?;
                w.get(index)?.as_ref().map(|_| index)
            }
            None => w.iter().position(Option::is_some),
        }
    })
}

/// Ids start at 1 so that a widget id is never falsy in the integrator's JavaScript.
fn index_to_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn find_host(container: &JsValue) -> Option<HtmlElement> {
    if let Some(id) = container.as_string() {
        let document = web_sys::window()?.document()?;
        return document
            .get_element_by_id(id.trim_start_matches('#'))?
            .dyn_into()
            .ok();
    }
    container.clone().dyn_into().ok()
}

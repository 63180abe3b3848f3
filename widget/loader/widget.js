/* Cobot widget loader: <script src="https://HOST/widget.js" async defer></script>
 * Finds the server from its own URL, imports the wasm module from HOST/widget/, starts it and exposes
 * window.cobot = { render, reset, getResponse, remove }. Options on the script URL, as hCaptcha's:
 * ?onload=fnName (called once the API is ready) and render=explicit (render nothing by itself). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (window.cobot || !script) return;
  var url = new URL(script.src);
  // The base is the script's URL without "/widget.js", so a server behind a path prefix works too.
  var base = url.origin + url.pathname.replace(/\/widget\.js$/, "");
  var params = url.searchParams;
  import(base + "/widget/cobot_widget.js")
    .then(function (m) {
      return m.default({ module_or_path: base + "/widget/cobot_widget_bg.wasm" }).then(function () {
        window.cobot = {
          render: function (el, opts) { return m.render(el, opts || {}); },
          reset: function (id) { m.reset(id); },
          getResponse: function (id) { return m.getResponse(id); },
          remove: function (id) { m.remove(id); }
        };
        var ready = function () {
          m.start(base, params.get("render") === "explicit");
          var onload = params.get("onload");
          if (onload && typeof window[onload] === "function") window[onload]();
        };
        // An async script may run before the page's widgets are parsed.
        if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
        else ready();
      });
    })
    .catch(function (e) {
      console.error("cobot: the widget could not start", e);
    });
})();

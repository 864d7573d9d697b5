// Starts Swagger UI on /api/docs/. A static file rather than an inline script, so the
// page works under the Content-Security-Policy `script-src 'self'`. The page passes the
// schema URL and SPECTACULAR_SETTINGS["SWAGGER_UI_SETTINGS"] in data- attributes.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  var settings = {};
  try {
    settings = JSON.parse(root.dataset.settings || "{}");
  } catch (e) {
    settings = {};
  }
  window.ui = SwaggerUIBundle(Object.assign({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  }, settings));
})();

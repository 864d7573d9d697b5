// Swagger UI on the static documentation site: the committed openapi.yaml, read-only
// (no "Try it out": there is no server behind a static site).
(function () {
  "use strict";
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-schema-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    supportedSubmitMethods: [],
    presets: [SwaggerUIBundle.presets.apis],
  });
})();

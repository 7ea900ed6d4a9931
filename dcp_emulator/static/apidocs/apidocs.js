// Starts Swagger UI (vendored swagger-ui-bundle.js) on #swagger-ui with the document URL the page names.
// A static file rather than an inline script: the page's Content-Security-Policy allows only this origin's
// scripts.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // the default badge would send the document to validator.swagger.io
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    displayRequestDuration: true,
    tryItOutEnabled: false,
  });
})();

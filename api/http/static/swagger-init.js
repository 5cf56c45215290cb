// Starts Swagger UI on the OpenAPI document named by the page (data-openapi). A file of its own: the
// Content-Security-Policy allows scripts from this host only, so no inline script.
(function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: "none",
  });
})();

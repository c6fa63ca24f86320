// Starts the vendored Swagger UI on the API's own OpenAPI document (no inline script: strict CSP).
const root = document.getElementById("api-reference");
window.SwaggerUIBundle({
  url: root.dataset.specUrl,
  domNode: root,
  deepLinking: true,
  // The API takes the session cookie's CSRF header or a bearer token; "Try it out" uses a token.
  persistAuthorization: false,
});

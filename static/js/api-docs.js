// Starts the vendored Swagger UI on the API's own OpenAPI document (no inline script: strict CSP).
const root = document.getElementById("api-reference");
window.SwaggerUIBundle({
  url: root.dataset.specUrl,
  domNode: root,
  // No deep links: with them each operation's path is a link inside its expand button, a
  // control inside a control that screen readers announce as one (axe: nested-interactive).
  deepLinking: false,
  // The API takes the session cookie's CSRF header or a bearer token; "Try it out" uses a token.
  persistAuthorization: false,
});

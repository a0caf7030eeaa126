// The API manual at /docs: Swagger UI on /openapi.json, every file served by Reclaim. Without
// deep links: with them, each operation's path is a link inside the button that opens it (a
// control in a control, which keyboards and screen readers cannot use apart).
window.addEventListener("load", function () {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: false });
});

// The API manual at /docs: Swagger UI on /openapi.json, every file served by Reclaim.
window.addEventListener("load", function () {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});

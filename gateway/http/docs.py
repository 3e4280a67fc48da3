"""GET /docs: Swagger UI over /openapi.json, its assets served from the installed
swagger-ui-bundle package (nothing is fetched from a CDN). The page and its assets are open;
the document itself needs the API key when one is set, which the page then asks for."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

_ASSETS = Path(swagger_ui_path)
# Only these files are served: a name is looked up here, never joined onto a path.
_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>triton-openai-gateway API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
  <form id="key-form" hidden>
    <label>This gateway needs an API key to show its API: <input id="key" type="password" autocomplete="off"></label>
    <button type="submit">Show</button>
  </form>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
"""
# Loads the document (with the key, once one is typed in) and hands it to Swagger UI, which
# sends the same key with the requests a reader tries out. The key lives in this page only.
_INIT = b"""(function () {
  var form = document.getElementById("key-form");
  function bearer(key) { return key ? { Authorization: "Bearer " + key } : {}; }
  function show(key) {
    fetch("openapi.json", { headers: bearer(key) }).then(function (answer) {
      if (answer.status === 401) { form.hidden = false; return null; }
      return answer.json();
    }).then(function (spec) {
      if (spec === null) { return; }
      form.hidden = true;
      window.ui = SwaggerUIBundle({
        spec: spec,
        dom_id: "#swagger-ui",
        deepLinking: true,
        requestInterceptor: function (request) {
          if (key) { request.headers.Authorization = "Bearer " + key; }
          return request;
        }
      });
    });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    show(document.getElementById("key").value);
  });
  show("");
})();
"""


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": _POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "public, max-age=3600",
    }


async def page(request: web.Request) -> web.Response:
    return web.Response(body=_PAGE, headers=_headers("text/html; charset=utf-8"))


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "init.js":
        return web.Response(body=_INIT, headers=_headers("text/javascript"))
    content_type = _FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.FileResponse(_ASSETS / name, headers=_headers(content_type))

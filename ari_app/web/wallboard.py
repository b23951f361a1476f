"""GET /wallboard and its static assets (HTML, JS, CSS shipped in the package).

The page is plain HTML + JS with no external resource: wall screens sit on
a network that may not reach the internet. `?lang=ar` serves the Arabic page
right-to-left from the first paint (the server sets `lang` and `dir`).
The files are read once at start-up and served from memory; only the three
known names are served, so there is no path to traverse.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from ari_app.web.pages import localized

ASSETS = {
    "wallboard.js": "text/javascript; charset=utf-8",
    "wallboard.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> str:
    return (resources.files("ari_app.web") / "static" / name).read_text(encoding="utf-8")


class Wallboard:
    def __init__(self) -> None:
        self.page = _read("wallboard.html")
        self.assets = {name: _read(name).encode() for name in ASSETS}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wallboard", self.handle_page, name="wallboard")
        app.router.add_get("/wallboard/", self.handle_slash)
        app.router.add_get("/wallboard/static/{name}", self.handle_asset, name="wallboard.asset")

    async def handle_page(self, request: web.Request) -> web.Response:
        html = localized(self.page, request)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def handle_slash(self, request: web.Request) -> web.Response:
        target = request.rel_url.with_path("/wallboard").with_query(request.query)
        raise web.HTTPPermanentRedirect(target)

    async def handle_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self.assets.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, headers={
            **SECURITY_HEADERS, "Content-Type": ASSETS[name], "Cache-Control": "max-age=300"})

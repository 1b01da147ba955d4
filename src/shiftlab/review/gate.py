"""The review app's request gate: the access token (header, or a cookie traded for the URL token on a first
GET; a change always needs the header, which a cross-site form cannot send), security headers on every
response, and a bound on request bodies. Both are pure ASGI middleware, added by ``app.create_app``."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

TOKEN_HEADER = "X-Shiftlab-Token"
COOKIE = "shiftlab_token"  # + a digest of the token: cookies are per host, not per port, so two servers
# on one machine must not overwrite each other's (nor hand theirs to whatever else listens there)
SAFE_METHODS = {"GET", "HEAD"}
#: the largest request body accepted (bytes): a decision is a few hundred; a note at its limit, escaped, fits
MAX_BODY = 256 * 1024

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"frame-ancestors 'none'"),
]


def cookie_name(token: str) -> str:
    """The access cookie's name for ``token``: ``shiftlab_token_`` + the first 12 hex digits of its sha256."""
    import hashlib

    return f"{COOKIE}_{hashlib.sha256(token.encode()).hexdigest()[:12]}"


class TokenGate:
    """Pure ASGI middleware (no per-request task hop, unlike ``@app.middleware``): the access rules above."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token
        self.cookie = cookie_name(token)

    def _ok(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        ok_header = self._ok(request.headers.get(TOKEN_HEADER))
        ok_cookie = self._ok(request.cookies.get(self.cookie))
        if request.method in SAFE_METHODS:
            if self._ok(request.query_params.get("token")):
                # first visit: trade the URL token for a cookie and drop it from the address bar
                clean = request.url.remove_query_params("token")
                # "/" + the path without leading slashes: "//host/x" would leave the site
                path = "/" + clean.path.lstrip("/")
                resp = RedirectResponse(path + (f"?{clean.query}" if clean.query else ""), 303)
                resp.set_cookie(self.cookie, self.token, httponly=True, samesite="strict")
                return await resp(scope, receive, send)
            if not (ok_header or ok_cookie):
                return await Response("unauthorized", 401, media_type="text/plain")(scope, receive, send)
        elif not ok_header:
            # a cookie alone never authorises a change: that is what a cross-site form would carry
            resp = Response("forbidden", 403, media_type="text/plain") if ok_cookie else \
                Response("unauthorized", 401, media_type="text/plain")
            return await resp(scope, receive, send)

        async def send_secure(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_secure)


class BodyLimit:
    """Pure ASGI middleware: a request body over ``max_body`` bytes is answered 413 before the app sees it (by
    its Content-Length, or counted as it arrives when it has none)."""

    def __init__(self, app, max_body: int = MAX_BODY):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        too_big = Response(f"request body over {self.max_body:,} bytes", 413, media_type="text/plain")
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            return await too_big(scope, receive, send)
        chunks, n = [], 0
        while True:  # read it all here (bounded), then hand the app one message
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            n += len(message.get("body", b""))
            if n > self.max_body:
                return await too_big(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

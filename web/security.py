"""Who may use the UI, CSRF tokens, same-origin checks and the headers every page gets.

- Authentication is optional: with `[web.users]` (scrypt hashes) or `[web] token` set,
  every route but /healthz and /static asks for HTTP basic auth or a bearer token.
- CSRF: a signed double-submit token. The cookie `relay_csrf` holds `RANDOM.SIGNATURE`
  (HMAC of RANDOM under a per-process key); every form posts the same token back, and a
  POST is refused unless the two are equal and the signature is ours. Requests whose
  Origin (or Sec-Fetch-Site) says they come from another site are refused as well.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.config import WebConfig
from relay.passwords import verify_password
from web import scope as mailbox_scope

CSRF_COOKIE = "relay_csrf"
CSRF_FIELD = "csrf"
OPEN_PATHS = ("/healthz", "/readyz")
OPEN_PREFIXES = ("/static/",)
_AUTH_CACHE_SIZE = 64

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
DEFAULT_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class CsrfTokens:
    """Makes and checks signed CSRF tokens under a key that lives as long as the process."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return _b64(hmac.new(self._key, nonce.encode("ascii"), hashlib.sha256).digest()[:18])

    def new(self) -> str:
        """A fresh token."""
        nonce = _b64(secrets.token_bytes(18))
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str) -> bool:
        """True when `token` was made by `new` under this key."""
        nonce, _, signature = token.partition(".")
        if not nonce or not signature or not nonce.isascii():
            return False
        return hmac.compare_digest(signature, self._sign(nonce))


def same_origin(headers: Headers) -> bool:
    """False when the browser says the request comes from another site."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def check_post(request: HTTPConnection, form: Mapping[str, object]) -> None:
    """Refuse (403) a state-changing request that is cross-site or lacks the CSRF token."""
    if not same_origin(request.headers):
        raise HTTPException(403, "cross-site request refused")
    sent = form.get(CSRF_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    expected = request.state.csrf
    if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "the form has expired or did not come from this page: reload")


class _Authenticator:
    """Checks basic-auth users (scrypt, in a thread, cached) and the bearer token."""

    def __init__(self, config: WebConfig) -> None:
        self.users = dict(config.users)
        self.token = config.token
        self._good: OrderedDict[tuple[str, bytes], None] = OrderedDict()

    async def user(self, authorization: str) -> str | None:
        """The name behind an Authorization header value, or None."""
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token:
            ok = hmac.compare_digest(credentials.strip().encode(), self.token.encode())
            return "token" if ok else None
        if scheme != "basic" or not self.users:
            return None
        try:
            name, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
        except ValueError:
            return None
        hashed = self.users.get(name)
        if hashed is None:
            return None
        key = (name, hashlib.sha256(password.encode()).digest())
        if key in self._good:
            self._good.move_to_end(key)
            return name
        if not await asyncio.to_thread(verify_password, password, hashed):
            return None
        self._good[key] = None
        if len(self._good) > _AUTH_CACHE_SIZE:
            self._good.popitem(last=False)
        return name


class SecurityMiddleware:
    """ASGI middleware: authentication, the CSRF cookie and default security headers."""

    def __init__(
        self,
        app: ASGIApp,
        config: WebConfig,
        tokens: CsrfTokens,
        mailbox_of: Callable[[str | None], str | None] = lambda _user: None,
    ) -> None:
        """`mailbox_of` says which mailbox a user is narrowed to (web/scope.py)."""
        self.app = app
        self.config = config
        self.tokens = tokens
        self.auth = _Authenticator(config)
        self.mailbox_of = mailbox_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check who is there, then pass the request on with a CSRF token in its state."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        path: str = scope["path"]
        state = scope.setdefault("state", {})
        state["user"] = None
        if self.config.auth_required and not _is_open(path):
            user = await self.auth.user(connection.headers.get("authorization", ""))
            if user is None:
                await _unauthorized(send)
                return
            state["user"] = user
        bearer = connection.headers.get("authorization", "")[:7].lower() == "bearer "
        state["mailbox"] = None if bearer else self.mailbox_of(state["user"])
        if state["mailbox"] is not None:
            store = scope["app"].state.store
            refused = await mailbox_scope.refusal(state["mailbox"], path, store)
            if refused is not None:
                status, text = refused
                response = PlainTextResponse(f"{text}\n", status_code=status)
                await response(scope, receive, send)
                return
        cookie = connection.cookies.get(CSRF_COOKIE, "")
        # A request from another site (a mail's sandboxed frame is one) comes without our
        # SameSite cookie: it gets a token for its page, but must not replace the cookie
        # of the UI open beside it, which would void every form there.
        fresh = not self.tokens.valid(cookie)
        settable = fresh and not _is_open(path) and same_origin(connection.headers)
        state["csrf"] = self.tokens.new() if fresh else cookie
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULT_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if settable:
                    headers.append("set-cookie", _cookie(state["csrf"], secure))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _cookie(token: str, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{flags}"


async def _unauthorized(send: Send) -> None:
    body = b"authentication required\n"
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", b'Basic realm="relay", charset="UTF-8"'),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in DEFAULT_HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

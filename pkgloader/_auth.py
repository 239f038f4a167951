"""Registry authentication, sans-I/O: anonymous, basic, static bearer, and the bearer-token
challenge flow (``WWW-Authenticate: Bearer realm=...,service=...,scope=...``).

Tokens are cached per (realm, service, scope) until they expire. Once a host's challenge is
known, a token for a new scope is fetched *before* the request, saving a 401 round trip; the
challenge (realm and service, never a token) is remembered in the cache for the next process
too (:class:`ChallengeMemo`).
When configured credentials are refused on a pull, one anonymous attempt is made (with a
warning); if that fails too, the error says both were refused. A pull answered with 401 is an
:class:`AuthError` (exit 4): ``auth-required`` without credentials, ``auth-failed`` with them.
Concurrent requests that need the same token share one token request (single flight).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from ._frozen import Frozen, init_field
from ._errors import AuthError, PkgLoaderError, RegistryError
from ._http import BodyTooLarge, Flow, Request, Response, redact_url
from ._log import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from ._credentials import Credentials

__all__ = ["AuthSession", "Challenge", "ChallengeMemo", "parse_challenge", "authed"]

_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
log = get_logger()
TOKEN_SAFETY_MARGIN = 10.0
DEFAULT_TOKEN_LIFETIME = 60.0


class Challenge(Frozen):
    __fields__ = ("scheme", "params")
    scheme: str  # "bearer" | "basic" | other
    params: dict[str, str]

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        init_field(self, "scheme", scheme)
        init_field(self, "params", params)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")


def parse_challenge(header: str | None) -> Challenge | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme.lower(), params)


class ChallengeMemo:
    """Bearer challenges remembered across processes: ``<cache>/auth/<host>.json`` holds the
    realm and service of a registry's last bearer challenge (never a token or a credential),
    for ``ttl`` seconds, so that the next process fetches its token before its first request
    instead of after a 401 round trip (one round trip to the registry per cold process). A
    remembered challenge is used only where a tampered cache could not misdirect anything
    secret: for an anonymous pull, or with configured credentials only when the realm is on
    the registry's own host name; its realm must be https (http only on loopback). A wrong or
    stale one costs one token request, then the usual 401 flow (which rewrites it). Writing
    is best effort (a read-only cache keeps working)."""

    def __init__(self, cache_dir: Any, ttl: float) -> None:
        self.cache_dir = cache_dir
        self.ttl = ttl

    def _path(self, host: str) -> Any:
        from ._source import _cache_file

        return _cache_file(self.cache_dir, host, "auth")

    def load(self, host: str) -> Challenge | None:
        from ._fsutil import read_regular
        from ._json import load_json

        try:
            raw = read_regular(self._path(host))
            data = load_json(raw) if len(raw) <= 4096 else None  # a memo is ~200 bytes
            if not isinstance(data, dict) or data.get("host") != host \
                    or not time.time() - float(data["seen_at"]) <= self.ttl:  # (a NaN time is stale too)
                return None
            realm, service = data.get("realm"), data.get("service")
            if not isinstance(realm, str) or not (service is None or isinstance(service, str)):
                return None
        except (OSError, ValueError, KeyError, TypeError):  # missing or damaged: no memo
            return None
        if not _usable_realm(realm):
            return None
        return Challenge("bearer", {"realm": realm, **({"service": service} if service else {})})

    def save(self, host: str, challenge: Challenge) -> None:
        import json

        from ._fsutil import atomic_write_bytes

        data = {"host": host, "realm": challenge.realm, "service": challenge.service, "seen_at": time.time()}
        try:
            atomic_write_bytes(self._path(host), json.dumps(data, sort_keys=True).encode(), durable=False)
        except OSError as exc:
            log.debug("cannot remember the auth challenge of %s: %s", host, exc)

    def forget(self, host: str) -> None:
        from ._tempfiles import unlink_quietly

        unlink_quietly(self._path(host))


def _usable_realm(realm: str | None) -> bool:
    """An https realm, or an http one on a loopback host."""
    from ._http import is_loopback_host

    try:
        parts = urlsplit(realm or "")
        host = parts.hostname or ""
    except ValueError:
        return False
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)))


class AuthSession:
    """Per-client auth state: learned challenges and cached tokens. Thread-safe. With a
    ``memo``, bearer challenges are remembered across processes (:class:`ChallengeMemo`)."""

    def __init__(self, memo: ChallengeMemo | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._challenges: dict[str, Challenge] = {}  # host -> challenge
        self._generations: dict[tuple[str, str, str], int] = {}  # bumped when a token is dropped
        self._warned: set[tuple[str, ...]] = set()
        self.token_requests = 0
        self._memo = memo
        self._remembered: dict[str, Challenge | None] = {}  # host -> what the memo holds (as read or written)

    def remembered(self, host: str, creds: Credentials | None) -> Challenge | None:
        """The challenge a previous process saw from ``host``, if it may be used with
        ``creds`` (see :class:`ChallengeMemo`)."""
        if self._memo is None or (creds is not None and creds.kind != "basic"):
            return None
        with self._lock:
            if host not in self._remembered:
                self._remembered[host] = self._memo.load(host)
            hint = self._remembered[host]
        if hint is None:
            return None
        if creds is not None:
            from ._http import split_host

            if (urlsplit(hint.realm or "").hostname or "").lower() != split_host(host).strip("[]").lower():
                return None  # credentials go only to a realm on the registry's own host
        return hint

    def forget_remembered(self, host: str) -> None:
        with self._lock:
            known = self._remembered.get(host)
            self._remembered[host] = None
        if known is not None and self._memo is not None:
            self._memo.forget(host)

    def warn_once(self, key: tuple[str, ...]) -> bool:
        """True the first time ``key`` is seen: a warning worth giving once per session."""
        with self._lock:
            if key in self._warned:
                return False
            self._warned.add(key)
            return True

    def challenge_for(self, host: str) -> Challenge | None:
        with self._lock:
            return self._challenges.get(host)

    def learn(self, host: str, challenge: Challenge, *, remember: bool = True) -> None:
        with self._lock:
            self._challenges[host] = challenge
            if not remember or self._memo is None or challenge.scheme != "bearer" \
                    or not _usable_realm(challenge.realm):
                return
            known = self._remembered.get(host)
            if known is not None and (known.realm, known.service) == (challenge.realm, challenge.service):
                return
            self._remembered[host] = Challenge("bearer", {k: v for k, v in challenge.params.items()
                                                          if k in ("realm", "service")})
        self._memo.save(host, challenge)

    def token(self, challenge: Challenge, scope: str) -> str | None:
        key = (challenge.realm or "", challenge.service or "", scope)
        with self._lock:
            hit = self._tokens.get(key)
            if hit and hit[1] > time.time():
                return hit[0]
            return None

    def store(self, challenge: Challenge, scope: str, token: str, lifetime: float) -> None:
        key = (challenge.realm or "", challenge.service or "", scope)
        with self._lock:
            self._tokens[key] = (token, time.time() + max(lifetime - TOKEN_SAFETY_MARGIN, 1.0))

    def drop(self, challenge: Challenge, scope: str) -> None:
        key = (challenge.realm or "", challenge.service or "", scope)
        with self._lock:
            self._tokens.pop(key, None)
            self._generations[key] = self._generations.get(key, 0) + 1

    def generation(self, challenge: Challenge, scope: str) -> int:
        """How often this token was dropped: a fresh fetch after a drop is never answered
        with the shared answer of the one before."""
        with self._lock:
            return self._generations.get((challenge.realm or "", challenge.service or "", scope), 0)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def token_flow(session: AuthSession, challenge: Challenge, scope: str, creds: Credentials | None,
               registry: str, *, retry: bool = True) -> Flow[str | None]:
    """Get a token from the challenge's realm. Returns None when the realm refuses the
    credentials (401/403), so the caller can try anonymously. ``retry=False``: one attempt
    (a remembered challenge, which the usual flow replaces if it fails)."""
    realm = challenge.realm
    try:
        scheme = urlsplit(realm).scheme if realm else ""
    except ValueError:  # e.g. an invalid IPv6 literal in the realm URL
        scheme = ""
    if not realm or scheme not in ("http", "https"):
        raise RegistryError(f"registry {registry} sent an unusable auth challenge (realm {realm!r})")
    query: dict[str, str] = {}
    if challenge.service:
        query["service"] = challenge.service
    if scope:
        query["scope"] = scope
    headers: dict[str, str] = {"Accept": "application/json"}
    session.token_requests += 1
    # concurrent flows asking for the same token share one request (see _http.SingleFlight)
    shared = ("token", realm, challenge.service or "", scope, session.generation(challenge, scope),
              (creds.kind, creds.username, creds.source) if creds is not None else None)
    if creds is not None and creds.kind == "identity-token":
        form = dict(query, grant_type="refresh_token", refresh_token=creds.secret, client_id="pkgloader")
        req = Request("POST", realm, {**headers, "Content-Type": "application/x-www-form-urlencoded"},
                      content=urlencode(form).encode(), max_body=1 << 20, shared=shared, retry=retry)
    else:
        if creds is not None and creds.kind == "basic":
            headers["Authorization"] = _basic(creds.username or "", creds.secret)
        sep = "&" if "?" in realm else "?"
        req = Request("GET", realm + (sep + urlencode(query) if query else ""), headers, max_body=1 << 20,
                      shared=shared, retry=retry)
    try:
        resp: Response = yield req
    except BodyTooLarge as exc:
        raise RegistryError(f"token service {redact_url(realm)} for {registry} sent an answer over {exc.limit >> 20} MiB",
                            code="answer-too-large",
                            hint="a token answer is a few KiB; the registry's auth service is failing or hostile") from None
    if resp.status in (401, 403):
        return None
    if resp.status != 200:
        raise RegistryError(f"token service {redact_url(realm)} for {registry} answered HTTP {resp.status}",
                            hint="retry later; if it persists the registry's auth service is failing")
    try:
        data: Any = resp.json()
        token = data.get("token") or data.get("access_token")
        lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (ValueError, AttributeError, TypeError):
        raise RegistryError(f"token service {redact_url(realm)} for {registry} sent an invalid answer") from None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"token service {redact_url(realm)} for {registry} sent no token")
    session.store(challenge, scope, token, lifetime)
    return token


def authed(session: AuthSession, req: Request, *, host: str, scope: str, creds: Credentials | None,
           registry: str) -> Flow[Response]:
    """Send ``req`` with whatever auth the registry asks for. Returns the final response
    (which may still be 403/404, or 401 for a push: the caller words the error).

    Configured credentials that are refused get one anonymous attempt, announced by a warning
    (once per session, registry, source and scope). A pull that ends in 401 raises
    :class:`AuthError`: ``auth-required`` when no credentials are configured (exit 4: a 401 asks
    for authentication, even if some registries answer so for a missing repository too), else
    ``auth-failed`` naming where the credentials came from and whether anonymous access was
    refused as well."""
    use_creds = creds
    tried_anonymous = False
    refused = False  # the configured credentials were refused (by the registry or its token service)
    base_headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}

    def fall_back() -> None:
        nonlocal use_creds, tried_anonymous
        assert creds is not None
        use_creds, tried_anonymous = None, True
        if session.warn_once(("anonymous", registry, creds.source, scope)):
            log.warning("registry %s did not accept the credentials from %s for %s; trying anonymous access",
                        registry, creds.source, scope)

    if session.challenge_for(host) is None:
        # a challenge a previous process saw: fetch the token first, skipping the 401 round
        # trip; if that fails in any way, forget it and take the usual way
        hint = session.remembered(host, creds)
        if hint is not None:
            try:
                hinted = session.token(hint, scope) or (yield from token_flow(session, hint, scope, creds, registry,
                                                                              retry=False))
            except PkgLoaderError:
                hinted = None
            if hinted is not None:
                session.learn(host, hint, remember=False)
            else:
                session.forget_remembered(host)

    resp: Response | None = None
    for _ in range(4):  # bounded: known challenge, fresh token, anonymous retry
        headers = dict(base_headers)
        challenge = session.challenge_for(host)
        if use_creds is not None and use_creds.kind == "bearer":
            headers["Authorization"] = f"Bearer {use_creds.secret}"
        elif challenge is not None and challenge.scheme == "bearer":
            token = session.token(challenge, scope)
            if token is None:
                token = yield from token_flow(session, challenge, scope, use_creds, registry)
                if token is None:
                    if use_creds is not None and not tried_anonymous:
                        refused = True
                        fall_back()
                        continue
                    raise _refused(registry, host, creds, scope, anonymous_refused=creds is not None)
            headers["Authorization"] = f"Bearer {token}"
        elif challenge is not None and challenge.scheme == "basic" and use_creds is not None and use_creds.kind == "basic":
            headers["Authorization"] = _basic(use_creds.username or "", use_creds.secret)
        req.headers = headers
        resp = yield req
        if resp.status != 401:
            return resp
        if refused:
            # the credentials were refused and anonymous access is not enough: say so, rather
            # than letting the caller word a bare 401 as "not found or not authorized"
            raise _refused(registry, host, creds, scope, anonymous_refused=True)
        new = parse_challenge(resp.header("www-authenticate"))
        sent_auth = "Authorization" in headers
        if new is None or new.scheme not in ("bearer", "basic"):
            break
        old = challenge
        session.learn(host, new)
        if new.scheme == "bearer":
            if sent_auth and old is not None and old.scheme == "bearer" and not (use_creds and use_creds.kind == "bearer"):
                session.drop(old, scope)  # expired or revoked: fetch a fresh one once
                if old == new:
                    if use_creds is not None and not tried_anonymous:
                        fall_back()  # the credentials got a token, but it does not grant the scope
                        continue
                    break
            if use_creds is not None and use_creds.kind == "bearer":
                if not tried_anonymous:  # the static token was refused
                    refused = True
                    fall_back()
                    continue
                break
            continue
        # basic challenge
        if use_creds is None or use_creds.kind != "basic":
            break
        if sent_auth:
            if not tried_anonymous:
                refused = True
                fall_back()
                continue
            break
    assert resp is not None
    if resp.status == 401 and scope.endswith(":pull"):
        # a pull the registry answers with 401 asks for (other) credentials; a push's 401 is
        # worded by the caller, which knows what was being pushed
        raise _refused(registry, host, creds, scope, anonymous_refused=tried_anonymous, status=401)
    return resp


def _refused(registry: str, host: str, creds: Credentials | None, scope: str, *,
             anonymous_refused: bool = False, status: int | None = None) -> AuthError:
    http = f" (HTTP {status})" if status is not None else ""
    if creds is None:
        from ._credentials import env_host_key

        return AuthError(
            f"registry {registry} requires authentication for {scope}{http}",
            code="auth-required",
            details=[f"no credentials are configured for {host}",
                     "a registry may answer so for a repository that does not exist, too"],
            hint=f'configure credentials: auth under [registry."{registry}".oci], docker login, '
                 f"or PKGLOADER_REGISTRY_{env_host_key(host)}_USERNAME/_PASSWORD; or check the package name",
        )
    anonymous = ", and anonymous access was refused too" if anonymous_refused else ""
    return AuthError(
        f"registry {registry} refused the credentials from {creds.source} for {scope}{anonymous}",
        hint="check the username and password (or token) and that the account may access this repository",
    )

"""A "ghcr-like" registry for integration tests: HTTPS, token auth with anonymous pull,
blob downloads redirected to a second host (a pre-signed "CDN" URL), paged tag lists.

    ghcr = GhcrLike.start(workdir)           # or the ``ghcr_registry`` fixture
    pushed = ghcr.push_wasm("ns/pkg", "1.0.0", wasm_bytes)   # as alice, straight to the registry
    client: host=ghcr.host (127.0.0.1:PORT), CA=ghcr.ca_path, no credentials needed to pull

Parts (all on loopback, all stopped by ``close()``):

* ``token_server`` - support.tokenserver.TokenServer (plain HTTP realm
  ``http://127.0.0.1:P/token``), users alice/bob (TOKEN_USERS) may do everything,
  anonymous may pull;
* ``registry`` - RegistryServer(tls=True, token_server=...): distribution 2.8 over HTTPS;
* ``front`` - support.cdnfront.CdnFront in front of it (HTTPS with the registry's cert,
  ``page_size=100``): what clients talk to. Blob GETs → 307 to ``front.cdn_host``
  (``localhost:PORT``), whose URLs refuse ``Authorization`` and can be made to expire.

Seeding: ``push_wasm``/``push_tags`` push straight to the registry (not through the front, so
``front.requests()`` only shows the test's own traffic) with alice's token; ``push_tags``
writes all but the first tag straight into the registry's storage (fast; see there). For other pushes use
``ghcr.oci()`` (alice, to the front) or ``ghcr.oci(via_front=False)``; note that
``OciClient.get_blob`` through the front sees the 307 (httpx does not follow redirects).
"""

from __future__ import annotations

import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.cdnfront import CdnFront
from support.oci import OCI_MANIFEST, OciClient, PushedArtifact
from support.registry import RegistryServer
from support.tokenserver import TokenServer

__all__ = ["GhcrLike", "PUSH_USER"]

PUSH_USER = "alice"
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


@dataclass
class GhcrLike:
    """token server + TLS token registry + CdnFront (see module docstring)."""

    token_server: TokenServer
    registry: RegistryServer
    front: CdnFront
    _clients: list[OciClient] = field(default_factory=list, init=False, repr=False)
    _pusher: OciClient | None = field(default=None, init=False, repr=False)
    _owns: bool = field(default=False, init=False, repr=False)  # close() stops the servers

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        tls: bool = True,
        page_size: int | None = 100,
        registry_binary: str | None = None,
        users: dict[str, str] | None = None,
        **token_kwargs: Any,
    ) -> "GhcrLike":
        """Start all three parts under ``workdir`` (outside pytest; the fixture
        ``ghcr_registry`` uses the shared registry/token fixtures instead)."""
        workdir = Path(workdir)
        ts = TokenServer(workdir / "token", users=users or {"alice": "alice-password", "bob": "bob-password"}, **token_kwargs)
        ts.start()
        try:
            reg = RegistryServer(workdir / "registry", tls=tls, token_server=ts, binary=registry_binary).start()
            try:
                front = CdnFront(reg, page_size=page_size).start()
            except BaseException:
                reg.stop()
                raise
        except BaseException:
            ts.stop()
            raise
        ghcr = cls(ts, reg, front)
        ghcr._owns = True
        return ghcr

    # -- facts ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the front: what a client configures as the registry."""
        return self.front.host

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def cdn_host(self) -> str:
        return self.front.cdn_host

    @property
    def tls(self) -> bool:
        return self.front.scheme == "https"

    @property
    def ca_pem(self) -> str:
        """PEM of the CA that signed the front's, the CDN's and the registry's cert."""
        return self.registry.ca_pem

    @property
    def ca_path(self) -> Path:
        return self.registry.ca_path

    def verify(self) -> ssl.SSLContext | bool:
        """httpx ``verify=`` trusting the front and the CDN."""
        return self.registry.verify()

    def password(self, user: str = PUSH_USER) -> str:
        return self.token_server.password(user)

    # -- clients / seeding -------------------------------------------------------------

    def oci(
        self,
        *,
        username: str | None = PUSH_USER,
        password: str | None = None,
        anonymous: bool = False,
        via_front: bool = True,
    ) -> OciClient:
        """An OciClient (closed by ``close()``) talking to the front (or the registry)."""
        if anonymous:
            username = None
        if username is not None and password is None:
            password = self.token_server.password(username)
        client = OciClient(
            self.front.url if via_front else self.registry.url,
            username=username,
            password=password,
            verify=self.registry.verify(),
        )
        self._clients.append(client)
        return client

    def _push_client(self) -> OciClient:
        if self._pusher is None:
            self._pusher = self.oci(via_front=False)
        return self._pusher

    def push_wasm(self, repo: str, tag: str | None, data: bytes | Path, **kwargs: Any) -> PushedArtifact:
        """Push ``data`` as a one-layer wasm artifact as alice, straight to the registry
        (``OciClient.push_wasm`` keywords accepted)."""
        return self._push_client().push_wasm(repo, tag, data, **kwargs)

    def push_tags(
        self, repo: str, tags: list[str], data: bytes | Path, *, via_api: bool = False, **kwargs: Any
    ) -> PushedArtifact:
        """Push one artifact (tagged ``tags[0]``) and give it every other tag in ``tags``
        (e.g. 120 versions, for paging).

        By default the extra tags are written straight into the registry's storage, exactly
        the two link files distribution's ``PUT /manifests/<tag>`` of an existing manifest
        writes (``_manifests/tags/<tag>/current/link`` and ``.../index/sha256/<hex>/link``;
        distribution 2.8 caches no tags, so it serves them at once): ~0.1 s for 120 tags
        where 119 PUTs take ~0.7-1 s on this registry. ``via_api=True`` PUTs them instead."""
        if not tags:
            raise ValueError("push_tags needs at least one tag")
        for tag in tags:
            if not _TAG_RE.match(tag):
                raise ValueError(f"not an OCI tag: {tag!r}")
        client = self._push_client()
        pushed = client.push_wasm(repo, tags[0], data, **kwargs)  # also caches the push token
        rest = tags[1:]
        if via_api:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda tag: client.push_manifest(repo, tag, pushed.manifest, OCI_MANIFEST), rest))
            return pushed
        base = self.registry.storage_dir / "docker/registry/v2/repositories" / repo / "_manifests/tags"
        hex_ = pushed.manifest_digest.split(":", 1)[1]
        for tag in rest:
            for link in (base / tag / "current/link", base / tag / "index/sha256" / hex_ / "link"):
                link.parent.mkdir(parents=True, exist_ok=True)
                link.write_text(pushed.manifest_digest)
        return pushed

    def anonymous_token(self, repo: str, actions: str = "pull") -> str:
        """A token from the token server without credentials (what ghcr hands anyone)."""
        import httpx

        ts = self.token_server
        resp = httpx.get(
            ts.realm,
            params={"service": ts.service, "scope": f"repository:{repo}:{actions}"},
            trust_env=False,
            timeout=10.0,
        )
        resp.raise_for_status()
        return resp.json()["token"]

    def close(self) -> None:
        """Close the clients; stop the servers too if ``start()`` started them."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._pusher = None
        if self._owns:
            self.front.stop()
            self.registry.stop()
            self.token_server.stop()

    def __enter__(self) -> "GhcrLike":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

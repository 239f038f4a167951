"""Raw OCI distribution helpers on plain httpx, to seed and inspect registries in tests
independently of pkgloader.

    oci = OciClient.for_registry(registry)               # creds picked from the set-up
    pushed = oci.push_wasm("ns/pkg", "1.0.0", wasm_path)  # config blob + layer + manifest
    assert oci.get_blob("ns/pkg", pushed.layer_digest) == wasm_path.read_bytes()

Auth: on a 401 the client reads ``WWW-Authenticate``; ``Basic`` → retries with the
credentials, ``Bearer`` → fetches a token from the realm (``service`` + ``scope`` from the
challenge, credentials as Basic when it has any), caches it per scope and retries once.
``token_fetches`` counts token requests. TLS trust comes from ``verify`` (an
``ssl.SSLContext``, a CA file path or ``True``).

``push_with_oras`` pushes through oras-py for interop tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from urllib.parse import urljoin

import httpx

if TYPE_CHECKING:
    from support.registry import RegistryServer

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "WASM_CONFIG",
    "WASM_LAYER",
    "Manifest",
    "OciClient",
    "OciError",
    "PushedArtifact",
    "digest_of",
    "push_with_oras",
    "wasm_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
ORAS_DEFAULT_CONFIG = "application/vnd.unknown.config.v1+json"
ACCEPT_ALL = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciError(AssertionError):
    """An unexpected registry answer (an AssertionError so tests fail, not error)."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        try:
            body = response.text[:500]
        except httpx.ResponseNotRead:
            body = "<body not read>"
        super().__init__(f"{what}: HTTP {response.status_code} from {response.request.method} {response.request.url}\n{body}")


@dataclass(frozen=True)
class Manifest:
    content: bytes
    media_type: str
    digest: str  # computed from content
    header_digest: str | None  # Docker-Content-Digest as sent

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.content)


@dataclass(frozen=True)
class PushedArtifact:
    repo: str
    tag: str | None
    manifest_digest: str
    manifest: bytes
    config_digest: str
    layer_digest: str
    layer_size: int


_CHALLENGE_RE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` → ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _CHALLENGE_RE.finditer(rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


def wasm_manifest(
    config: bytes,
    layer: bytes,
    *,
    config_media_type: str = WASM_CONFIG,
    layer_media_type: str = WASM_LAYER,
    annotations: Mapping[str, str] | None = None,
    layer_annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
) -> bytes:
    """An OCI image manifest for one wasm layer, as wkg/wasm-pkg-tools write it."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_media_type, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": layer_media_type, "digest": digest_of(layer), "size": len(layer)}],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if layer_annotations:
        manifest["layers"][0]["annotations"] = dict(layer_annotations)
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json.dumps(manifest, indent=2).encode()


def wasm_config(layer: bytes, *, os_name: str = "wasip2") -> bytes:
    """A wasm OCI artifact config (``application/vnd.wasm.config.v0+json``)."""
    return json.dumps(
        {
            "created": "2026-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": os_name,
            "layerDigests": [digest_of(layer)],
        }
    ).encode()


class OciClient:
    """A tiny OCI distribution client (sync httpx). Use ``with`` or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        verify: ssl.SSLContext | str | Path | bool = True,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = (username, password or "") if username is not None else None
        if isinstance(verify, Path):
            verify = str(verify)
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self.http = httpx.Client(verify=verify, timeout=timeout, trust_env=False)
        self._basic = False
        self._tokens: dict[str, str] = {}
        self.token_fetches = 0

    @classmethod
    def for_registry(
        cls,
        registry: "RegistryServer",
        *,
        username: str | None = None,
        password: str | None = None,
        anonymous: bool = False,
        base_url: str | None = None,
    ) -> "OciClient":
        """A client for ``registry`` with the credentials of its set-up (first htpasswd user,
        or the token server's first user) unless given or ``anonymous``. ``base_url`` talks
        to e.g. a proxy in front of it while keeping the registry's TLS trust."""
        if not anonymous and username is None:
            if registry.htpasswd:
                username, password = registry.username, registry.password
            elif registry.token_server is not None and registry.token_server.users:
                username = next(iter(registry.token_server.users))
                password = registry.token_server.users[username]
        return cls(
            base_url or registry.url,
            username=None if anonymous else username,
            password=None if anonymous else password,
            verify=registry.verify(),
        )

    def __enter__(self) -> "OciClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- auth-aware request --------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request; on 401 authenticate from the challenge and retry once."""
        if not url.startswith(("http://", "https://")):
            url = self.base_url + ("" if url.startswith("/") else "/") + url
        hdrs = dict(headers or {})
        self._apply_auth(hdrs, scope)
        resp = self.http.request(method, url, headers=hdrs, content=content, params=params)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        kind, params_ = parse_challenge(challenge)
        if kind == "basic":
            if self.credentials is None or self._basic:
                return resp
            self._basic = True
        elif kind == "bearer":
            token_scope = params_.get("scope") or scope or ""
            token = self._fetch_token(params_, token_scope)
            if token is None:
                return resp
            self._tokens[scope or token_scope] = token
            self._tokens[token_scope] = token
        else:
            return resp
        hdrs = dict(headers or {})
        self._apply_auth(hdrs, scope or params_.get("scope"))
        return self.http.request(method, url, headers=hdrs, content=content, params=params)

    def _apply_auth(self, headers: dict[str, str], scope: str | None) -> None:
        if self._basic and self.credentials is not None:
            user, password = self.credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif scope is not None and scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"

    def _fetch_token(self, challenge: Mapping[str, str], scope: str) -> str | None:
        realm = challenge.get("realm")
        if not realm:
            return None
        params = {"service": challenge.get("service", "")}
        if scope:
            params["scope"] = scope
        self.token_fetches += 1
        auth = httpx.BasicAuth(*self.credentials) if self.credentials is not None else None
        resp = self.http.get(realm, params=params, auth=auth)
        if resp.status_code != 200:
            return None
        body = resp.json()
        return body.get("token") or body.get("access_token")

    @staticmethod
    def _scope(repo: str, actions: str) -> str:
        return f"repository:{repo}:{actions}"

    # -- API ---------------------------------------------------------------------

    def ping(self) -> httpx.Response:
        return self.request("GET", "/v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=self._scope(repo, "pull"))
        return resp.status_code == 200

    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload: ``POST /v2/<repo>/blobs/uploads/`` then ``PUT <location>?digest=``."""
        digest = digest_of(data)
        scope = self._scope(repo, "pull,push")
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        if resp.status_code != 202:
            raise OciError(f"start upload to {repo}", resp)
        location = urljoin(str(resp.url), resp.headers["Location"])
        sep = "&" if "?" in location else "?"
        resp = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            scope=scope,
            headers={"Content-Type": "application/octet-stream"},
            content=data,
        )
        if resp.status_code != 201:
            raise OciError(f"finish upload of {digest} to {repo}", resp)
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: bytes | Mapping[str, Any], media_type: str | None = None) -> str:
        """PUT a manifest under a tag (or digest); returns its digest."""
        if not isinstance(manifest, bytes):
            manifest = json.dumps(manifest, indent=2).encode()
        if media_type is None:
            media_type = json.loads(manifest).get("mediaType", OCI_MANIFEST)
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": media_type},
            content=manifest,
        )
        if resp.status_code != 201:
            raise OciError(f"push manifest {repo}:{reference}", resp)
        digest = digest_of(manifest)
        sent = resp.headers.get("Docker-Content-Digest")
        if sent and sent != digest:
            raise AssertionError(f"registry says manifest digest {sent}, we computed {digest}")
        return digest

    def push_wasm(
        self,
        repo: str,
        tag: str | None,
        wasm: bytes | Path,
        *,
        config: bytes | None = None,
        config_media_type: str = WASM_CONFIG,
        layer_media_type: str = WASM_LAYER,
        annotations: Mapping[str, str] | None = None,
        layer_annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
    ) -> PushedArtifact:
        """Push a wasm as a one-layer OCI artifact (wasm config + ``application/wasm`` layer)
        and tag it (``tag=None``: push by digest only)."""
        layer = wasm.read_bytes() if isinstance(wasm, Path) else wasm
        if config is None:
            config = wasm_config(layer)
        config_digest = self.push_blob(repo, config)
        layer_digest = self.push_blob(repo, layer)
        manifest = wasm_manifest(
            config,
            layer,
            config_media_type=config_media_type,
            layer_media_type=layer_media_type,
            annotations=annotations,
            layer_annotations=layer_annotations,
            artifact_type=artifact_type,
        )
        digest = self.push_manifest(repo, tag or digest_of(manifest), manifest, OCI_MANIFEST)
        return PushedArtifact(repo, tag, digest, manifest, config_digest, layer_digest, len(layer))

    def head_manifest(self, repo: str, reference: str, accept: str = ACCEPT_ALL) -> httpx.Response:
        return self.request("HEAD", f"/v2/{repo}/manifests/{reference}", scope=self._scope(repo, "pull"), headers={"Accept": accept})

    def get_manifest(self, repo: str, reference: str, accept: str = ACCEPT_ALL) -> Manifest:
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=self._scope(repo, "pull"), headers={"Accept": accept})
        if resp.status_code != 200:
            raise OciError(f"get manifest {repo}:{reference}", resp)
        content = resp.content
        return Manifest(content, resp.headers.get("Content-Type", ""), digest_of(content), resp.headers.get("Docker-Content-Digest"))

    def get_blob(self, repo: str, digest: str, *, verify_digest: bool = True) -> bytes:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=self._scope(repo, "pull"))
        if resp.status_code != 200:
            raise OciError(f"get blob {repo}@{digest}", resp)
        if verify_digest and digest_of(resp.content) != digest:
            raise AssertionError(f"blob {digest} from {repo} hashes to {digest_of(resp.content)}")
        return resp.content

    def iter_tag_pages(self, repo: str, n: int | None = None, max_pages: int = 1000) -> Iterator[list[str]]:
        """Each page of ``/tags/list``, following ``Link: <...>; rel="next"``."""
        url: str | None = f"/v2/{repo}/tags/list" + (f"?n={n}" if n is not None else "")
        for _ in range(max_pages):
            if url is None:
                return
            resp = self.request("GET", url, scope=self._scope(repo, "pull"))
            if resp.status_code != 200:
                raise OciError(f"list tags of {repo}", resp)
            yield resp.json().get("tags") or []
            url = _next_link(resp)
            if url is not None:
                url = urljoin(str(resp.url), url)
        raise AssertionError(f"more than {max_pages} tag pages for {repo}")

    def list_tags(self, repo: str, n: int | None = None) -> list[str]:
        return [t for page in self.iter_tag_pages(repo, n) for t in page]

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self.request("DELETE", f"/v2/{repo}/manifests/{digest}", scope=self._scope(repo, "delete"))
        if resp.status_code != 202:
            raise OciError(f"delete manifest {repo}@{digest}", resp)

    def delete_blob(self, repo: str, digest: str) -> None:
        resp = self.request("DELETE", f"/v2/{repo}/blobs/{digest}", scope=self._scope(repo, "delete"))
        if resp.status_code != 202:
            raise OciError(f"delete blob {repo}@{digest}", resp)


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def _next_link(resp: httpx.Response) -> str | None:
    m = _LINK_RE.search(resp.headers.get("Link", ""))
    return m.group(1) if m else None


def push_with_oras(
    registry: "RegistryServer",
    repo: str,
    tag: str,
    wasm_path: Path | str,
    *,
    media_type: str = WASM_LAYER,
    annotations: Mapping[str, str] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """Push ``wasm_path`` with oras-py's ``OrasClient.push`` (its default config,
    ``application/vnd.unknown.config.v1+json`` with ``{}``), return the manifest digest.

    http registries need ``insecure=True``; for TLS oras-py passes ``tls_verify`` to
    requests' ``verify=``, so the CA file path is given there. Basic-auth registries use
    oras' ``basic`` backend, token registries its ``token`` backend (both get the
    credentials via ``auth.set_basic_auth``; no docker config.json is written). oras-py
    holds a single token and cannot widen its scope, so for token registries a
    ``pull,push`` token is fetched first and handed over with ``set_token_auth``."""
    import oras.client

    if username is None:
        if registry.htpasswd:
            username, password = registry.username, registry.password
        elif registry.token_server is not None and registry.token_server.users:
            username = next(iter(registry.token_server.users))
            password = registry.token_server.users[username]
    client = oras.client.OrasClient(
        hostname=registry.host,
        insecure=not registry.tls,
        tls_verify=str(registry.ca_path) if registry.tls else True,
        auth_backend="basic" if registry.htpasswd else "token",
    )
    if username is not None:
        client.auth.set_basic_auth(username, password or "")
    if registry.token_server is not None:
        # oras-py keeps ONE token per client and never re-requests a wider scope: its first
        # HEAD gets a pull-only token and the upload POST then fails with 401. Hand it a
        # pull,push token up front (fetched from the same token server with the same creds).
        ts = registry.token_server
        resp = httpx.get(
            ts.realm,
            params={"service": ts.service, "scope": f"repository:{repo}:pull,push"},
            auth=(username, password or "") if username is not None else None,
            trust_env=False,
        )
        if resp.status_code != 200:
            raise AssertionError(f"token for oras push: HTTP {resp.status_code} {resp.text[:200]}")
        client.auth.set_token_auth(resp.json()["token"])
    path = Path(wasm_path).resolve()
    response = client.push(
        target=f"{registry.host}/{repo}:{tag}",
        files=[f"{path}:{media_type}"],
        manifest_annotations=dict(annotations) if annotations else None,
        disable_path_validation=True,
        quiet=True,
    )
    if response.status_code not in (200, 201):
        raise AssertionError(f"oras push to {registry.host}/{repo}:{tag} failed: HTTP {response.status_code} {response.text[:300]}")
    digest = response.headers.get("Docker-Content-Digest")
    if not digest:
        raise AssertionError("oras push: registry sent no Docker-Content-Digest")
    return digest

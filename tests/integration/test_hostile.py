"""The hostile-registry matrix: every command that talks to a registry, against every hostile
answer (tests/support/hostile.py) on every endpoint it reads.

Each case asserts: the exit code (3-6; 0 only where README documents a fallback: a registry.json
that cannot be read is a warning, and the host is taken for an OCI registry), the whole first
line of the error (what was being read, and the byte limit for an oversized answer), no
traceback and nothing a terminal would obey on stderr, and nothing written (no output, no
blob, no partial download, no release record of a release that was never read, no lock file,
nothing published). The library (``Client``, a few ``AsyncClient`` cases) raises a
``PkgLoaderError`` with the same code and message. A few cases run the CLI in a subprocess and
bound its peak memory (``wait4``) on never-ending and huge bodies.

Time is bounded by small ``[pkgloader]`` limits (``TIMEOUTS``): a case that times out ends
after two tries of a quarter or half second.

Layout: the expectation tables (``OCI``, ``WARG``, ``PUBLISH``, ``METADATA``) give, per endpoint
and answer, the exit code and the first line of the message; ``cases()`` turns them into test
parameters for the primary command of each endpoint, and ``COMMANDS`` runs every other command
against a selection of answers on the endpoints it reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import pkgloader
from pkgloader import AsyncClient, Client, PkgLoaderError
from pkgloader._config import Config
from pkgloader.backends import warg_backend
from support.hostile import (
    BAD_URL,
    LIMITS,
    OCI_REPO,
    WARG_NAME,
    WARG_WASM,
    WASM,
    HostileRegistry,
)

TIMEOUTS = """
    [pkgloader]
    timeout = 0.5
    connect_timeout = 2.0
    stall_timeout = 0.25
    metadata_timeout = 0.2
    low_speed_limit = 1024
    low_speed_time = 0.25
    retries = 1
    """
OCI_REF = "test:pkg@=1.0.0"
OCI_RANGE = "test:pkg@1.0"
WARG_REF = "acme:pkg@1.0"
WHAT = "test:pkg@1.0.0"
WWHAT = "acme:pkg@1.0.0"
PUBLISH_AS = "test:pkg@2.0.0"
#: what the publish cases push (a component with a custom section)
PUBLISHED = WASM + b"\x00\x03\x02hi"
WL = f"warg registry {WARG_NAME}"
#: the slowest a case may be (a bound against hangs, far above what any case takes)
BOUND = 20.0
#: peak memory of a CLI run against a never-ending or huge answer
MAX_RSS_MIB = 150

TIMING = ("trickle", "stall", "silent")
JSON_ANSWERS = ("oversized", "oversized-chunked", "deep", "malformed", "binary", "wrong-types", "cl-more", "cl-less",
                "endless", "bomb", "escape", *TIMING)
CONTENT_ANSWERS = ("oversized", "oversized-chunked", "malformed", "binary", "cl-more", "cl-less", "endless", "escape",
                   *TIMING)


def json_error(body: bytes) -> str:
    """What ``json.loads`` says of ``body`` (the messages quote it)."""
    try:
        json.loads(body)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{body[:40]!r} is valid JSON")


def mib(endpoint: str) -> str:
    n = LIMITS[endpoint]
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


# --- what each answer must give --------------------------------------------------------------
#
# An expectation is (exit code, first line of the message) where the line is a format string
# over the names of ``Where`` (host, urls, bodies); "{n}" stands for the byte count of the
# good body and is filled in from the server.


@dataclass(frozen=True)
class Where:
    reg: HostileRegistry

    @property
    def host(self) -> str:
        return self.reg.host

    def names(self) -> dict[str, str]:
        r, u = self.reg, self.reg.url
        return {
            "host": r.host,
            "tags_url": f"{u}/v2/{OCI_REPO}/tags/list",
            "manifest_url": f"{u}/v2/{OCI_REPO}/manifests/1.0.0",
            "digest_url": f"{u}/v2/{OCI_REPO}/manifests/{r.manifest_digest}",
            "blob_url": f"{u}/v2/{OCI_REPO}/blobs/{r.layer_digest}",
            "token_url": f"{u}/token?service=hostile&scope=repository%3Atest%2Fpkg%3Apull",
            "push_token_url": f"{u}/token?service=hostile&scope=repository%3Atest%2Fpkg%3Apull%2Cpush",
            "token": f"token service {u}/token for {r.host}",
            "metadata_url": f"{u}/.well-known/wasm-pkg/registry.json",
            "head_url": f"{u}/v2/{OCI_REPO}/manifests/2.0.0",
            "upload_url": f"{u}/v2/{OCI_REPO}/blobs/uploads/",
            "head_blob_url": f"{u}/v2/{OCI_REPO}/blobs/sha256:{hashlib.sha256(PUBLISHED).hexdigest()}",
            "checkpoint_url": f"{u}/v1/fetch/checkpoint",
            "logs_url": f"{u}/v1/fetch/logs",
            "inclusion_url": f"{u}/v1/proof/inclusion",
            "content_url": f"{u}/v1/content/{r.warg_digest}",
            "download_url": f"{u}/content/{r.warg_digest.replace(':', '-')}",
        }

    def line(self, template: str, endpoint: str, answer: str) -> str:
        """The expected first line as a regular expression ("{n}": the good body's size)."""
        names = self.names()
        if "{json}" in template:
            good = self.reg.good_body(endpoint)
            body = {"malformed": good[: len(good) // 2], "cl-less": good[: len(good) - 10],
                    "binary": b"\xff\xfe\xfd\x00\x80" * 8}[answer]
            names["json"] = json_error(body)
        if "{n}" in template or "{n1000}" in template:
            n = len(self.reg.good_body(endpoint))
            names.update(n=str(n), n1000=str(n + 1000))
        text = template.format(**names)
        return re.escape(text).replace(re.escape("<RATE>"), r"\d+")


def _timing(url: str, deadline: str = "0.5") -> dict[str, tuple[int, str]]:
    return {
        "trickle": (6, f"error[timeout]: {{{url}}} did not answer completely within {deadline} s"),
        "stall": (6, f"error[timeout]: {{{url}}} sent nothing for 0.25 s"),
        "silent": (6, f"error[timeout]: {{{url}}} sent nothing for 0.25 s"),
        "cl-more": (6, f"error[network-error]: connection to {{{url}}} broke: the body ended after {{n}} of {{n1000}} bytes"),
    }


def _too_large_and_invalid(too_large: tuple[int, str], invalid: str, code: int, slug: str) -> dict[str, tuple[int, str]]:
    return {
        "oversized": too_large, "oversized-chunked": too_large, "endless": too_large,
        "deep": (code, f"error[{slug}]: {invalid}the JSON is nested too deeply"),
        "malformed": (code, f"error[{slug}]: {invalid}{{json}}"),
        "binary": (code, f"error[{slug}]: {invalid}{{json}}"),
        "cl-less": (code, f"error[{slug}]: {invalid}{{json}}"),
        "bomb": (code, f"error[{slug}]: {invalid}the JSON has more than 100,000 arrays and objects"),
    }


TAGS_INVALID = "{host} sent an invalid tag list: "
OCI: dict[str, dict[str, tuple[int, str]]] = {
    "tags": {
        **_too_large_and_invalid((6, "error[answer-too-large]: the tag list of test/pkg from {host} is larger than 16 MiB; "
                                     "refusing to read it"), TAGS_INVALID, 6, "registry-error"),
        "wrong-types": (6, "error[registry-error]: {host} sent an invalid tag list: tags is not a list of strings"),
        "escape": (6, "error[registry-error]: {host} answered HTTP 500 to a tag-list request"),
        "bad-url": (6, f"error[registry-error]: {{host}} sent an invalid tag-list link: '{BAD_URL}'"),
        "link-bomb": (0, ""),  # a Link header that is no link: the one page is the whole (usable) list
        **_timing("tags_url"),
    },
    "manifest": {
        **_too_large_and_invalid((5, f"error[manifest-too-large]: manifest of {WHAT} is larger than 4 MiB; refusing to read it"),
                                 f"manifest of {WHAT} is not valid JSON: ", 5, "invalid-manifest"),
        "wrong-types": (5, f"error[invalid-manifest]: manifest of {WHAT} has no layers list"),
        "escape": (6, f"error[registry-error]: {{host}} answered HTTP 500 to the manifest request for {WHAT}"),
        **_timing("manifest_url"),
    },
    "manifest-digest": {
        **{a: (5, f"error[digest-mismatch]: manifest of {WHAT} does not match its digest")
           for a in ("deep", "malformed", "binary", "wrong-types", "cl-less", "bomb")},
        **{a: (5, f"error[manifest-too-large]: manifest of {WHAT} is larger than 4 MiB; refusing to read it")
           for a in ("oversized", "oversized-chunked", "endless")},
        "escape": (6, f"error[registry-error]: {{host}} answered HTTP 500 to the manifest request for {WHAT}"),
        **_timing("digest_url"),
    },
    "blob": {
        **{a: (5, f"error[size-mismatch]: content of {WHAT} is larger than its manifest says")
           for a in ("oversized", "oversized-chunked", "endless", "binary")},
        "malformed": (5, f"error[digest-mismatch]: content of {WHAT} does not match its digest"),
        "cl-less": (5, f"error[size-mismatch]: content of {WHAT} is 0 bytes, not the 8 its manifest says"),
        "escape": (6, f"error[registry-error]: {{host}} answered HTTP 500 to the content request for {WHAT}"),
        **_timing("blob_url"),
        "trickle": (6, "error[timeout]: download from {blob_url} was too slow: <RATE> bytes/s, below 1024 bytes/s for 0.25 s"),
    },
    "token": {
        **{a: (6, "error[answer-too-large]: {token} sent an answer over 1 MiB") for a in ("oversized", "oversized-chunked", "endless")},
        **{a: (6, "error[registry-error]: {token} sent an invalid answer")
           for a in ("deep", "malformed", "binary", "wrong-types", "cl-less")},
        "bomb": (6, "error[registry-error]: {token} sent no token"),
        "escape": (6, "error[registry-error]: {token} answered HTTP 500"),
        "bad-url": (6, f"error[registry-error]: registry {{host}} sent an unusable auth challenge (realm '{BAD_URL}')"),
        **_timing("token_url"),
    },
}


def _warg(endpoint: str, url: str, route: str, what: str, wrong: tuple[int, str]) -> dict[str, tuple[int, str]]:
    return {
        **_too_large_and_invalid((6, f"error[registry-error]: {WL} sent more than 64 MiB in answer to {route}"),
                                 f"{WL} sent a response to {what} that is not valid JSON (", 6, "registry-error"),
        "wrong-types": wrong,
        "escape": (6, f"error[registry-error]: {WL} answered HTTP 500 to {what}"),
        **_timing(url),
    }


def _closing(table: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """The "not valid JSON (reason" lines close their parenthesis."""
    return {a: (c, m + ")" if "not valid JSON (" in m else m) for a, (c, m) in table.items()}


WARG: dict[str, dict[str, tuple[int, str]]] = {
    "warg-checkpoint": _closing(_warg("warg-checkpoint", "checkpoint_url", "GET v1/fetch/checkpoint", "the checkpoint request",
                                      (5, "error[warg-invalid-record]: malformed checkpoint: checkpoint contents must be a "
                                          "JSON object"))),
    "warg-logs": _closing(_warg("warg-logs", "logs_url", "POST v1/fetch/logs", "the fetch/logs request",
                                (6, f"error[registry-error]: {WL} sent a malformed fetch/logs response: 'more' is not a boolean"))),
    "warg-inclusion": _closing(_warg("warg-inclusion", "inclusion_url", "POST v1/proof/inclusion", "the inclusion proof request",
                                     (5, f"error[warg-bad-proof]: inclusion proof response from {WL} is malformed: inclusion "
                                         "proof field 'log' must be a base64 string, got int"))),
    "warg-content": {
        **_closing(_warg("warg-content", "content_url", "GET v1/content", f"the content-source request for {WWHAT}",
                         (6, f"error[registry-error]: {WL} sent no content sources for {WWHAT}"))),
        "bad-url": (6, f"error[registry-error]: {WL} offers no usable (httpGet) content source for {WWHAT}"),
    },
}
NO_SOURCE = (6, f"error[registry-error]: none of the 1 content source(s) of {WWHAT} from {WL} could be downloaded")
MISMATCH = (5, f"error[digest-mismatch]: content of {WWHAT} does not match its digest")
#: without a size from the content source, content is capped at MAX_UNSIZED_CONTENT (patched to
#: 1 MiB here: the real 2 GiB would take seconds); with one, it is exact
DOWNLOAD = {
    "unsized": {**{a: NO_SOURCE for a in ("oversized", "oversized-chunked", "endless", "cl-more", "escape", *TIMING)},
                **{a: MISMATCH for a in ("malformed", "binary", "cl-less")}},
    "sized": {**{a: (5, f"error[size-mismatch]: content of {WWHAT} is larger than its content source says")
                 for a in ("oversized", "oversized-chunked", "endless", "binary")},
              **{a: NO_SOURCE for a in ("cl-more", "escape", *TIMING)},
              **{a: MISMATCH for a in ("malformed", "cl-less")}},
}
PUBLISH: dict[str, dict[str, tuple[int, str]]] = {
    "head-manifest": {
        "escape": (6, f"error[registry-error]: {{host}} answered HTTP 500 to the check whether {PUBLISH_AS} is already published"),
        "stall": (6, "error[timeout]: {head_url} sent nothing for 0.25 s"),
        "silent": (6, "error[timeout]: {head_url} sent nothing for 0.25 s"),
    },
    "head-blob": {
        "escape": (0, ""),  # an unknown blob state: the blob is uploaded (again), which is safe
        "stall": (6, "error[timeout]: {head_blob_url} sent nothing for 0.25 s"),
        "silent": (6, "error[timeout]: {head_blob_url} sent nothing for 0.25 s"),
    },
    "upload": {
        **{a: (6, "error[answer-too-large]: {host} answered the upload start with more than 64 KiB; refusing to read it")
           for a in ("oversized", "oversized-chunked", "endless")},
        "escape": (6, "error[registry-error]: {host} answered HTTP 500 to the upload start"),
        "bad-url": (6, f"error[registry-error]: {{host}} answered the upload start with an unusable Location '{BAD_URL}': "
                       "Invalid IPv6 URL"),
        "cl-more": (6, "error[network-error]: connection to {upload_url} broke: the body ended after 0 of 1000 bytes"),
        "trickle": (6, "error[timeout]: {upload_url} did not answer completely within 0.5 s"),
        "stall": (6, "error[timeout]: {upload_url} sent nothing for 0.25 s"),
        "silent": (6, "error[timeout]: {upload_url} sent nothing for 0.25 s"),
    },
}
METADATA_INVALID = "registry metadata at {metadata_url} is invalid: "
#: a registry.json that cannot be used is a warning naming why, and the fetch goes on
METADATA: dict[str, str] = {
    **{a: "registry metadata at {metadata_url} is larger than 64 KiB; refusing to read it"
       for a in ("oversized", "oversized-chunked", "endless")},
    "deep": METADATA_INVALID + "the JSON is nested too deeply",
    "malformed": METADATA_INVALID + "{json}",
    "binary": METADATA_INVALID + "{json}",
    "cl-less": METADATA_INVALID + "{json}",
    "wrong-types": METADATA_INVALID + "'oci' must be an object with that protocol's settings",
    "bomb": METADATA_INVALID + "'pad' must be an object with that protocol's settings",
    "escape": "registry metadata at {metadata_url} answered HTTP 500",
    "cl-more": "connection to {metadata_url} broke: the body ended after {n} of {n1000} bytes",
    **{a: "{metadata_url} did not answer completely within 0.2 s" for a in TIMING},
}


# --- set-up ---------------------------------------------------------------------------------


@dataclass
class Setup:
    reg: HostileRegistry
    tmp: Path
    config: Path
    out: Path

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    @property
    def host(self) -> str:
        return self.reg.host

    def args(self, *command: str) -> list[str]:
        return ["--config", str(self.config), "--cache-dir", str(self.cache), *command]

    def client(self) -> Client:
        return Client(Config.load(config_files=[self.config], cache_dir=self.cache))

    def async_client(self) -> AsyncClient:
        return AsyncClient(Config.load(config_files=[self.config], cache_dir=self.cache))


#: answers that take a while to read in full (up to 64 MiB in 4 KiB pieces) get a longer total
#: deadline, so that the size limit, not the speed of the machine, decides how they end
BIG = ("oversized-chunked", "endless", "bomb")


def write_config(reg: HostileRegistry, tmp: Path, *, discover: bool = False, big: bool = False) -> Path:
    mapping = (f'"{reg.host}"' if discover else
               f'{{ registry = "{reg.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{reg.host}" }} }} }}')
    path = tmp / "hostile.toml"
    path.write_text(textwrap.dedent(f"""
        [namespace_registries]
        test = {mapping}
        acme = "{WARG_NAME}"
        [registry."{WARG_NAME}".warg]
        url = "{reg.url}"
        """) + textwrap.dedent(TIMEOUTS).replace("timeout = 0.5", "timeout = 10.0" if big else "timeout = 0.5"))
    return path


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Setup]]:
    """``hostile(endpoint, answer, token_auth=..., index=..., discover=...)`` -> a started
    HostileRegistry answering ``answer`` on ``endpoint``, and a config for it."""
    started: list[HostileRegistry] = []
    monkeypatch.setattr(warg_backend, "MAX_UNSIZED_CONTENT", 1 << 20)

    def make(endpoint: str | None = None, answer: str = "good", *, discover: bool = False, **kw: Any) -> Setup:
        reg = HostileRegistry(**kw).__enter__()
        started.append(reg)
        if endpoint is not None:
            reg.set(endpoint, answer)
        (tmp_path / "out").mkdir(exist_ok=True)
        config = write_config(reg, tmp_path, discover=discover, big=answer in BIG)
        return Setup(reg, tmp_path, config, tmp_path / "out" / "pkg.wasm")

    yield make
    for reg in started:
        reg.close()


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_clean_stderr(err: str) -> None:
    assert "Traceback" not in err, err
    for ch in ("\x1b", "\x07", "\r", "\u202e"):
        assert ch not in err, f"{ch!r} in stderr: {err!r}"


def assert_nothing_written(s: Setup, *, release_known: bool = False) -> None:
    """No output, no blob, no partial download; no release record unless its manifest was
    read (the content was what failed)."""
    assert files(s.out.parent) == []
    assert files(s.cache / "blobs") == []
    assert files(s.cache / "tmp") == []
    if not release_known:
        assert files(s.cache / "releases") == []
    assert not list(Path.cwd().glob("*.wasm"))


def check_failure(s: Setup, code: int, err: str, pattern: str, *, release_known: bool = False) -> None:
    assert_clean_stderr(err)
    first = err.splitlines()[0] if err else ""
    assert re.fullmatch(pattern, first), f"\n{first}\n{pattern}"
    assert code in (3, 4, 5, 6)
    assert_nothing_written(s, release_known=release_known)


# --- the primary matrix: each endpoint through the command that reads it first ---------------


@dataclass(frozen=True)
class Case:
    endpoint: str
    answer: str
    code: int
    template: str
    command: tuple[str, ...]
    server: tuple[tuple[str, Any], ...] = ()
    #: the release record is written before this endpoint is read (blob, content)
    release_known: bool = False

    @property
    def id(self) -> str:
        extra = "-".join(k for k, v in self.server if v is True)
        return f"{self.endpoint}-{self.answer}" + (f"-{extra}" if extra else "")


def cases() -> list[Case]:
    out: list[Case] = []
    fetch_exact = ("fetch", OCI_REF)
    for endpoint, table in OCI.items():
        command = ("fetch", OCI_RANGE) if endpoint == "tags" else fetch_exact
        server = {"token": (("token_auth", True),), "manifest-digest": (("index", True),)}.get(endpoint, ())
        for answer, (code, template) in table.items():
            out.append(Case(endpoint, answer, code, template, command, server, release_known=endpoint == "blob"))
    for endpoint, table in WARG.items():
        for answer, (code, template) in table.items():
            out.append(Case(endpoint, answer, code, template, ("fetch", WARG_REF), release_known=endpoint == "warg-content"))
    for hints, table in DOWNLOAD.items():
        for answer, (code, template) in table.items():
            out.append(Case("warg-download", answer, code, template, ("fetch", WARG_REF),
                            (("size_hints", hints == "sized"),), release_known=True))
    for endpoint, table in PUBLISH.items():
        for answer, (code, template) in table.items():
            out.append(Case(endpoint, answer, code, template, ("publish", "<wasm>", "--package", PUBLISH_AS)))
    return out


CASES = cases()
#: failures whose fix is outside the files of this matrix's author: each is reported, and
#: xfail(strict) so that the fix shows up here as a pass to turn into a plain case
KNOWN: dict[tuple[str, str], str] = {}


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=KNOWN[(c.endpoint, c.answer)], strict=True)]
                         if (c.endpoint, c.answer) in KNOWN else []) for c in cases]


def _command(c: Case, s: Setup) -> list[str]:
    if c.command[0] == "publish":
        wasm = s.tmp / "hello.wasm"
        wasm.write_bytes(PUBLISHED)
        return ["publish", str(wasm), "--package", PUBLISH_AS]
    return [*c.command, "-o", str(s.out)] if c.command[0] == "fetch" else list(c.command)


def _expect_success(c: Case, s: Setup, code: int, out: str, err: str) -> None:
    assert code == 0, err
    assert_clean_stderr(err)
    if c.command[0] == "publish":
        assert s.reg.hits.get("put-manifest") == 1
    else:
        assert s.out.read_bytes() == WASM


@pytest.mark.parametrize("case", params(CASES))
def test_cli(case: Case, hostile: Callable[..., Setup], run_cli: Any) -> None:
    s = hostile(case.endpoint, case.answer, **dict(case.server))
    started = time.monotonic()
    r = run_cli(*s.args(*_command(case, s)))
    assert time.monotonic() - started < BOUND
    if case.code == 0:
        return _expect_success(case, s, r.code, r.out, r.err)
    assert r.code == case.code, r
    check_failure(s, r.code, r.err, Where(s.reg).line(case.template, case.endpoint, case.answer),
                  release_known=case.release_known)
    if case.command[0] == "publish":
        assert s.reg.hits.get("put-manifest", 0) == 0  # nothing published
    assert r.out == ""


def _library_call(c: Case, s: Setup, client: Client) -> Any:
    if c.command[0] == "publish":
        wasm = s.tmp / "hello.wasm"
        wasm.write_bytes(PUBLISHED)
        return client.publish(wasm, PUBLISH_AS)
    return client.fetch(c.command[1], s.out)


#: the library runs every answer that is not a matter of time on every endpoint, and the
#: timing answers on one endpoint of each kind
LIBRARY_CASES = [c for c in CASES if c.answer not in TIMING or c.endpoint in ("tags", "blob", "token", "warg-logs")]


@pytest.mark.parametrize("case", params(LIBRARY_CASES))
def test_library(case: Case, hostile: Callable[..., Setup]) -> None:
    s = hostile(case.endpoint, case.answer, **dict(case.server))
    with s.client() as client:
        if case.code == 0:
            _library_call(case, s, client)
            return
        with pytest.raises(Exception) as info:
            _library_call(case, s, client)
    exc = info.value
    assert isinstance(exc, PkgLoaderError), repr(exc)
    assert getattr(pkgloader, type(exc).__name__, None) is type(exc), f"{type(exc)} is not a public pkgloader error"
    assert exc.exit_code == case.code
    check_failure(s, exc.exit_code, exc.render(), Where(s.reg).line(case.template, case.endpoint, case.answer),
                  release_known=case.release_known)


ASYNC_CASES = [c for c in CASES if c.endpoint in ("tags", "manifest", "blob", "token", "warg-logs", "warg-download")
               and c.answer in ("oversized", "oversized-chunked", "deep", "cl-more", "endless", "bomb", "stall")]


@pytest.mark.parametrize("case", params(ASYNC_CASES))
def test_async_library(case: Case, hostile: Callable[..., Setup]) -> None:
    s = hostile(case.endpoint, case.answer, **dict(case.server))

    async def run() -> None:
        async with s.async_client() as client:
            await client.fetch(case.command[1], s.out)

    with pytest.raises(PkgLoaderError) as info:
        asyncio.run(run())
    assert info.value.exit_code == case.code
    check_failure(s, info.value.exit_code, info.value.render(),
                  Where(s.reg).line(case.template, case.endpoint, case.answer), release_known=case.release_known)


# --- registry.json: the documented fallback ------------------------------------------------------


@pytest.mark.parametrize("answer", list(METADATA))
def test_registry_json_is_a_warning_and_the_host_is_taken_for_oci(answer: str, hostile: Callable[..., Setup],
                                                                  run_cli: Any) -> None:
    s = hostile("registry.json", answer, discover=True)
    r = run_cli(*s.args("fetch", OCI_REF, "-o", str(s.out)))
    assert r.code == 0, r
    assert_clean_stderr(r.err)
    reason = Where(s.reg).line(METADATA[answer], "registry.json", answer)
    host = re.escape(s.host)
    assert re.fullmatch(rf"warning: could not read registry metadata for {host} \({reason}\); "
                        rf"assuming {host} is itself an OCI registry \(registry chosen by namespace_registries\.test "
                        rf"\([^\n]+:\d+\)\)\nfetched {re.escape(WHAT)} \(sha256:[0-9a-f]{{12}}, "
                        rf"8 bytes\) from {host}\n", r.err), r.err
    assert s.out.read_bytes() == WASM
    assert files(s.cache / "metadata") == []  # a failure is not remembered as "no metadata"


@pytest.mark.parametrize("answer", ["oversized", "deep", "wrong-types", "stall"])
def test_registry_json_through_config_resolve_and_the_library(answer: str, hostile: Callable[..., Setup],
                                                             run_cli: Any, caplog: pytest.LogCaptureFixture) -> None:
    s = hostile("registry.json", answer, discover=True)
    r = run_cli(*s.args("config", "resolve", "test:pkg", "--json"))
    assert r.code == 0, r
    assert_clean_stderr(r.err)
    got = r.json()
    reason = Where(s.reg).line(METADATA[answer], "registry.json", answer)
    assert (got["backend"], got["oci_registry"], got["metadata"]) == ("oci", s.host, None)  # type: ignore[index]
    assert re.fullmatch(f"failed: {reason}", got["metadata_source"]), got  # type: ignore[index]
    with s.client() as client:
        assert client.fetch(OCI_REF, s.out).release.digest.hex == s.reg.layer_digest[7:]
    assert "could not read registry metadata" in caplog.text


def test_unusable_inline_metadata_is_a_config_error(tmp_path: Path, run_cli: Any) -> None:
    cfg = tmp_path / "inline.toml"
    cfg.write_text('[namespace_registries]\ntest = { registry = "r.example", metadata = { oci = { registry = "[::1" } } }\n')
    r = run_cli("--config", cfg, "config", "resolve", "test:pkg")
    assert r.code == 2, r
    assert r.err.splitlines()[0] == (
        "error[invalid-config]: the inline metadata of registry 'r.example' is unusable: "
        "oci.registry '[::1' is Invalid IPv6 URL")


# --- every other command against the answers of the endpoints it reads -----------------------------


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    endpoint: str
    answers: tuple[str, ...]
    table: dict[str, tuple[int, str]]
    project: bool = False
    server: tuple[tuple[str, Any], ...] = ()
    release_known: bool = False


COMMANDS = [
    Command("versions", ("versions", "test:pkg"), "tags", ("oversized-chunked", "deep", "wrong-types", "cl-more", "bomb",
                                                          "stall"), OCI["tags"]),
    Command("versions-json", ("versions", "test:pkg", "--json"), "tags", ("endless",), OCI["tags"]),
    Command("versions-warg", ("versions", "acme:pkg"), "warg-logs", ("oversized", "deep", "wrong-types", "stall"),
            WARG["warg-logs"]),
    Command("info", ("info", OCI_REF), "manifest", ("oversized", "deep", "wrong-types", "bomb", "stall"), OCI["manifest"]),
    Command("info-range", ("info", OCI_RANGE), "tags", ("endless", "malformed"), OCI["tags"]),
    Command("info-token", ("info", OCI_REF), "token", ("oversized", "deep"), OCI["token"], server=(("token_auth", True),)),
    Command("info-warg", ("info", WARG_REF), "warg-checkpoint", ("endless", "wrong-types"), WARG["warg-checkpoint"]),
    Command("lock-tags", ("lock",), "tags", ("oversized", "deep"), OCI["tags"], project=True),
    Command("lock-manifest", ("lock",), "manifest", ("wrong-types", "endless"), OCI["manifest"], project=True),
    Command("lock-blob", ("lock",), "blob", ("endless", "malformed"), OCI["blob"], project=True, release_known=True),
    Command("lock-warg", ("lock",), "warg-logs", ("endless", "bomb"), WARG["warg-logs"], project=True),
    Command("sync-blob", ("sync",), "blob", ("malformed", "stall"), OCI["blob"], project=True, release_known=True),
    Command("sync-warg", ("sync",), "warg-download", ("cl-less", "endless"), DOWNLOAD["unsized"], project=True,
            release_known=True),
    Command("publish-token", ("publish", "<wasm>", "--package", PUBLISH_AS), "token", ("oversized", "deep", "stall"),
            {"oversized": (6, "error[answer-too-large]: {token} sent an answer over 1 MiB"),
             "deep": (6, "error[registry-error]: {token} sent an invalid answer"),
             "stall": (6, "error[timeout]: {push_token_url} sent nothing for 0.25 s")},
            server=(("token_auth", True),)),
]
COMMAND_CASES = [(c, a) for c in COMMANDS for a in c.answers]


@pytest.mark.parametrize("command,answer", COMMAND_CASES, ids=[f"{c.name}-{a}" for c, a in COMMAND_CASES])
def test_other_commands(command: Command, answer: str, hostile: Callable[..., Setup], run_cli: Any) -> None:
    s = hostile(command.endpoint, answer, **dict(command.server))
    args = list(command.args)
    if args[0] == "publish":
        wasm = s.tmp / "hello.wasm"
        wasm.write_bytes(PUBLISHED)
        args[1] = str(wasm)
    if command.project:
        Path("pkgloader.toml").write_text('[dependencies]\n"test:pkg" = "1.0"\n"acme:pkg" = "1.0"\n')
    started = time.monotonic()
    r = run_cli(*s.args(*args))
    assert time.monotonic() - started < BOUND
    code, template = command.table[answer]
    assert r.code == code, r
    # the other package of a project may be fetched completely: only its files are allowed
    other = s.reg.warg_digest if command.endpoint in OCI else s.reg.layer_digest
    if command.project:
        blobs = {f for f in files(s.cache) if f.startswith("blobs/")}
        assert blobs <= {f"blobs/sha256/{other[7:]}"}, blobs
        assert files(s.cache / "tmp") == []
        assert not Path("pkgloader.lock").exists() and files(Path("wit")) == []
        assert_clean_stderr(r.err)
        assert re.fullmatch(Where(s.reg).line(template, command.endpoint, answer), r.err.splitlines()[0]), r.err
    else:
        check_failure(s, r.code, r.err, Where(s.reg).line(template, command.endpoint, answer),
                      release_known=command.release_known)
    if args[0] == "publish":
        assert s.reg.hits.get("put-manifest", 0) == 0
    if "--json" in args:
        error = r.json()["error"]  # type: ignore[index]
        assert (error["exit_code"], f"error[{error['code']}]: {error['message']}") == (code, r.err.splitlines()[0])
    else:
        assert r.out == ""


def test_library_projects_lock_and_sync(hostile: Callable[..., Setup]) -> None:
    s = hostile("tags", "endless")
    Path("pkgloader.toml").write_text('[dependencies]\n"test:pkg" = "1.0"\n')
    with s.client() as client:
        for op in (client.lock, client.sync):
            with pytest.raises(PkgLoaderError) as info:
                op()
            assert info.value.code == "answer-too-large" and info.value.exit_code == 6
            assert info.value.message == f"the tag list of test/pkg from {s.host} is larger than 16 MiB; refusing to read it"
    assert not Path("pkgloader.lock").exists() and files(Path("wit")) == []
    with s.client() as client, pytest.raises(PkgLoaderError) as info:
        client.versions("test:pkg")
    assert info.value.code == "answer-too-large"


def test_cache_list_is_empty_after_hostile_answers(hostile: Callable[..., Setup], run_cli: Any) -> None:
    s = hostile("manifest", "bomb")
    assert run_cli(*s.args("fetch", OCI_REF)).code == 5
    assert run_cli(*s.args("versions", "test:pkg")).code == 0  # the tag list is fine
    s.reg.set("tags", "deep")
    assert run_cli(*s.args("fetch", OCI_RANGE)).code == 6
    r = run_cli(*s.args("cache", "list", "--json"))
    assert (r.code, r.json()) == (0, {"releases": []})


# --- memory: a subprocess's peak RSS on never-ending and huge answers ------------------------------


#: runs argv[1:] and prints its exit code and peak RSS (KiB). A child's ru_maxrss counts the
#: memory of the process it was forked from until its exec, so the CLI is started from this
#: small interpreter, not from the (large) test process
MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""
MEMORY = [
    ("tags", "endless", OCI_RANGE, {}, 6),
    ("tags", "bomb", OCI_RANGE, {}, 6),
    ("manifest", "bomb", OCI_REF, {}, 5),
    ("warg-logs", "endless", WARG_REF, {}, 6),
    ("warg-logs", "bomb", WARG_REF, {}, 6),
    ("blob", "endless", OCI_REF, {"big_blob": 48 << 20}, 5),
    ("blob", "oversized", OCI_REF, {"big_blob": 48 << 20}, 5),
    ("warg-download", "endless", WARG_REF, {"size_hints": True}, 5),
    ("registry.json", "endless", OCI_REF, {"discover": True}, 0),
]


@pytest.mark.parametrize("endpoint,answer,ref,kw,code", MEMORY, ids=[f"{e}-{a}" for e, a, *_ in MEMORY])
def test_memory_stays_bounded(endpoint: str, answer: str, ref: str, kw: dict[str, Any], code: int,
                              hostile: Callable[..., Setup]) -> None:
    s = hostile(endpoint, answer, **kw)
    err_path = s.tmp / "stderr"
    with open(err_path, "wb") as err:
        measured = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "pkgloader",
                                   *s.args("fetch", ref, "-o", str(s.out))],
                                  stdout=subprocess.PIPE, stderr=err, check=True, timeout=60)
    exit_code, peak_kib = map(int, measured.stdout.split())
    text = err_path.read_text()
    assert exit_code == code, text
    assert_clean_stderr(text)
    peak_mib = peak_kib / 1024
    assert peak_mib < MAX_RSS_MIB, f"peak RSS {peak_mib:.0f} MiB"
    if code:
        assert files(s.out.parent) == [] and files(s.cache / "blobs") == [] and files(s.cache / "tmp") == []
    if kw.get("big_blob"):
        assert s.reg.sent["blob"] >= 48 << 20  # it did stream the whole announced size before refusing more


# --- a few properties of the fixture itself ---------------------------------------------------------


def test_fixture_keeps_its_own_memory_bounded(hostile: Callable[..., Setup]) -> None:
    """The server streams what it sends: a never-ending answer costs it one chunk of memory."""
    import http.client

    s = hostile("tags", "endless")
    conn = http.client.HTTPConnection(s.reg.host, timeout=5)
    conn.request("GET", f"/v2/{OCI_REPO}/tags/list")
    resp = conn.getresponse()
    got = 0
    while got < 32 << 20:
        got += len(resp.read(1 << 20))
    conn.close()
    assert s.reg.sent["tags"] >= 32 << 20


def test_every_good_answer_serves_a_working_registry(hostile: Callable[..., Setup], run_cli: Any) -> None:
    s = hostile(token_auth=True, index=True, size_hints=True)
    assert run_cli(*s.args("fetch", OCI_REF, "-o", str(s.out))).code == 0
    assert s.out.read_bytes() == WASM
    assert run_cli(*s.args("fetch", WARG_REF, "-o", str(s.out.with_name("w.wasm")))).code == 0
    assert s.out.with_name("w.wasm").read_bytes() == WARG_WASM
    # an exact version needs no tag list; one token serves the pull scope (after one 401)
    assert {k: v for k, v in s.reg.hits.items() if v} == {
        "token": 1, "manifest": 2, "manifest-digest": 1, "blob": 1,
        "warg-checkpoint": 1, "warg-logs": 1, "warg-inclusion": 1, "warg-content": 1, "warg-download": 1}

#!/usr/bin/env python3
"""pkgloader against its peers, on a real OCI registry on loopback.

    .venv/bin/python scripts/bench.py --quick          # ghcr-like HTTPS set-up, all but the 1 GiB case
    .venv/bin/python scripts/bench.py                  # the full run (needs ~4 GiB of free disk)
    .venv/bin/python scripts/bench.py --setup both     # the HTTPS table, then the plain-HTTP table
    .venv/bin/python scripts/bench.py --plain          # only the plain-HTTP table
    .venv/bin/python scripts/bench.py --only cold-small,warm-small --runs 9

What it does
------------
1. Starts the servers of one set-up (``--setup``, default ``ghcr``):

   * ``ghcr`` (default), what every public home of WebAssembly packages looks like: the test
     suite's ghcr-like registry (``tests/support/ghcr.py``): Debian's ``docker-registry`` over
     TLS with a throw-away CA and ``auth.token`` against the tests' token server (anonymous
     pull), behind ``CdnFront``, which pages ``tags/list`` 100 at a time and answers blob GETs
     with ``307`` to a signed URL on a second loopback host (``localhost:<port>``, a Python
     TLS server). Every tool gets the CA: pkgloader through ``SSL_CERT_FILE``, oras-py through
     its ``tls_verify=`` option and ``REQUESTS_CA_BUNDLE``, skopeo through ``--src-cert-dir``,
     curl through ``--cacert`` (with ``-L`` and an anonymous token fetched before the timed
     run: curl has no token flow). Requests are counted at the front, the CDN and the token
     server, per run.
   * ``plain``: ``docker-registry`` over plain HTTP, anonymous, and a small counting proxy
     in front of it that pages ``tags/list`` 100 at a time (fetches go straight to the
     registry; the warm fetch and the tag list through the proxy).
   * ``both``: ``ghcr``, then ``plain``, one table each, in one run.
2. Seeds it with pkgloader's own ``Client.publish`` (ghcr: straight to the registry, as a
   user allowed to push): a ~40 KB WIT package built with ``wasm-tools component wit DIR
   --wasm``; synthetic components of 1 MiB, 100 MiB and 1 GiB (the component preamble and one
   custom section carrying the payload, streamed to disk); 50 distinct small WIT packages;
   one package with 1,500 versions (one publish; the other tags are written into the
   registry's storage as distribution writes them).
3. Runs every workload for pkgloader and its peers in alternation (A B C A B C ...), after
   ``--warmup`` discarded rounds, ``--runs`` times. Every measurement is a fresh process,
   spawned by a tiny helper that reports its wall time, CPU time (user+sys) and peak RSS
   (``wait4``); library ("in-process") numbers are timed inside that process: importing the
   library plus the call (everything but the interpreter start-up; the JSON report splits
   the two). After a run that wrote 64 MiB or more, its files are deleted and the machine
   settles (``sync``, 0.5 s) before the next tool starts, whichever tool it is.
4. Prints medians, min-max, the ratio pkgloader/peer per pair and the target, check rows
   (request counts, token requests per repository scope, CPU time, peak RSS), and writes a
   JSON report and a Markdown table (default ``bench-results/``, git-ignored).

Peers: oras-py (``oras`` from PyPI; as a process and in-process; for several repositories
its bearer token is dropped between pulls, see ORAS_PULL), ``skopeo copy`` to a ``dir:``,
``curl -o FILE`` of the raw blob (verifies nothing), ``python -c pass`` (the interpreter
floor). pkgloader runs as the user runs it: the ``pkgloader`` console script of this
interpreter's environment (``python -m pkgloader`` when there is none). "Cold" means a fresh
empty ``PKGLOADER_CACHE_DIR`` and a fresh output path per run; "warm" means a cache filled by
an earlier (untimed) run. Exact versions (``@=1.0.0``) are fetched, the same work as pulling
a tag.

The script reports; it does not judge: it exits 0 when targets are missed and non-zero
only when a workload could not run (1) or the command line is wrong (2).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchsupport import (  # noqa: E402
    BenchError,
    GhcrSetup,
    Measurement,
    PlainSetup,
    add_tags,
    build_wit_package,
    find_binary,
    measure,
    sha256_file,
    wit_interfaces_for,
    write_component,
)

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
KiB = 1 << 10


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    wit_bytes: int
    components: dict[str, int]  # package name -> size
    multi: int
    tags: int
    page_size: int
    warg_records: int


FULL = Sizes(40_000, {"comp-s": MiB, "comp-m": 100 * MiB, "comp-l": 1024 * MiB}, 50, 1500, 100, 10_000)
# --tiny (smoke test only): every code path, small numbers
TINY = Sizes(40_000, {"comp-s": 256 * KiB, "comp-m": 4 * MiB, "comp-l": 16 * MiB}, 5, 250, 100, 300)

RSS_LIMIT_KIB = 64 * 1024


@dataclass(frozen=True)
class Targets:
    """Ratios of medians pkgloader/peer (``≤``); None: no target (reported only)."""

    fetch_oras: float  # 100 MiB and 1 GiB fetch vs oras-py (process)
    fetch_curl: float  # ... vs curl -o
    fetch_text: tuple[str, str]  # how the two read in the table
    cold: float  # cold small fetch vs oras-py (process)
    warm: float  # warm exact fetch vs python -c pass
    multi: float  # 50 packages vs 50 sequential oras-py pulls
    multi_cpu: float | None  # pkgloader's CPU (user+sys) vs oras-py's, same workload
    tags: float  # 1,500 paged tags vs oras-py
    tokens: bool  # check: one token request per repository scope per process


TARGETS = {
    # issue 12 (the ghcr-like set-up is the default)
    "ghcr": Targets(0.5, 1.5, ("≤ 0.5×", "≤ 1.5×"), 0.6, 3.0, 0.35, 0.25, 0.7, True),
    # the plain-HTTP targets of the earlier benchmark issue (throughput ≥ 1.8× oras-py, ≥ 0.7× curl)
    "plain": Targets(1 / 1.8, 1 / 0.7, ("throughput ≥ 1.8× oras-py", "throughput ≥ 0.7× curl"), 0.6, 3.5,
                     0.25, None, 1.0, False),
}


# --------------------------------------------------------------------------- child programs
# Every in-process program prints one last line "BENCH {json}" with "seconds" = importing the
# library + the call, timed inside the process (no interpreter start-up), split into "import"
# and "call", and what it produced. The import is counted because pkgloader defers its HTTP
# stack to the first call (``import pkgloader`` is ~1 ms) while ``import oras.client`` loads
# requests up front (~140 ms): timing only the call would charge pkgloader for imports that
# oras-py is excused from.

# BENCH_ORAS_TLS: "insecure" (plain HTTP) or the CA file (HTTPS: oras-py's tls_verify=)
ORAS_PULL = """
import json, os, sys, time
t0 = time.perf_counter()
import oras.client
t1 = time.perf_counter()
tls = os.environ["BENCH_ORAS_TLS"]
c = oras.client.OrasClient(insecure=True) if tls == "insecure" else oras.client.OrasClient(tls_verify=tls)
files = []
for t in sys.argv[2:]:
    # oras-py 0.2.43 keeps one bearer token per client and retries a 401 with it, so its
    # second repository on a token registry fails (insufficient_scope): forget the token
    # between repositories (the session and its keep-alive connections stay)
    if getattr(c, "auth", None) is not None and getattr(c.auth, "token", None) is not None:
        c.auth.token = None
    files.append(c.pull(target=t, outdir=sys.argv[1]))
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "files": sum(len(f) for f in files)}))
"""

ORAS_TAGS = """
import json, os, sys, time
t0 = time.perf_counter()
import oras.client
t1 = time.perf_counter()
tls = os.environ["BENCH_ORAS_TLS"]
c = oras.client.OrasClient(insecure=True) if tls == "insecure" else oras.client.OrasClient(tls_verify=tls)
tags = c.get_tags(sys.argv[1])
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "versions": len(set(tags))}))
"""

# The least a Python client can do for the same pulls: the standard library's http.client
# over pooled keep-alive connections (one per host), sequential, the registry's token flow
# (the realm remembered after the first 401, as pkgloader does), blob redirects followed
# without Authorization, the body read into a 1 MiB buffer, SHA-256 checked, written and
# fsync'd under a temp name and renamed. No cache, no config, no locks, no error handling.
# It is a reference point for what any Python implementation pays, not a peer.
HTTP_FLOOR = """
import hashlib, http.client, json, os, re, ssl, sys, time
from urllib.parse import quote, urlsplit
t0 = time.perf_counter()
out, scheme, host = sys.argv[1], sys.argv[2], sys.argv[3]
tls = os.environ.get("BENCH_ORAS_TLS", "insecure")
ctx = ssl.create_default_context(cafile=tls) if scheme == "https" else None
conns = {}
def conn(scheme, netloc):
    c = conns.get((scheme, netloc))
    if c is None:
        h, _, p = netloc.rpartition(":")
        c = (http.client.HTTPSConnection(h, int(p), context=ctx) if scheme == "https"
             else http.client.HTTPConnection(h, int(p)))
        conns[(scheme, netloc)] = c
    return c
def get(url, headers):
    u = urlsplit(url)
    c = conn(u.scheme, u.netloc)
    c.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
    return c.getresponse()
realm = None
def token(repo):
    r = get(f"{realm[0]}?service={quote(realm[1])}&scope={quote(f'repository:{repo}:pull')}", {})
    return json.loads(r.read())["token"]
accept = "application/vnd.oci.image.manifest.v1+json"
buf = bytearray(1 << 20)
view = memoryview(buf)
os.makedirs(out, exist_ok=True)
files = 0
for target in sys.argv[4:]:
    repo, _, tag = target.rpartition(":")
    auth = {"Authorization": f"Bearer {token(repo)}"} if realm else {}
    r = get(f"{scheme}://{host}/v2/{repo}/manifests/{tag}", {"Accept": accept, **auth})
    if r.status == 401:
        r.read()
        m = re.search(r'realm="([^"]+)",service="([^"]+)"', r.getheader("WWW-Authenticate"))
        realm = (m.group(1), m.group(2))
        auth = {"Authorization": f"Bearer {token(repo)}"}
        r = get(f"{scheme}://{host}/v2/{repo}/manifests/{tag}", {"Accept": accept, **auth})
    layer = json.loads(r.read())["layers"][0]
    url = f"{scheme}://{host}/v2/{repo}/blobs/{layer['digest']}"
    r = get(url, auth)
    if r.status in (301, 302, 303, 307, 308):
        r.read()
        r = get(r.getheader("Location"), {})
    assert r.status == 200, r.status
    h = hashlib.sha256()
    path = os.path.join(out, repo.rsplit("/", 1)[1] + ".wasm")
    fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while True:
        n = r.readinto(buf)
        if not n:
            break
        h.update(view[:n])
        v = view[:n]
        while v:
            v = v[os.write(fd, v):]
    os.fsync(fd)
    os.close(fd)
    assert "sha256:" + h.hexdigest() == layer["digest"], "digest mismatch"
    os.rename(path + ".part", path)
    files += 1
t1 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t1 - t0, "import": 0.0, "call": t1 - t0, "files": files}))
"""

PKG_FETCH_MANY = """
import json, sys, time
t0 = time.perf_counter()
import pkgloader
t1 = time.perf_counter()
with pkgloader.Client() as c:
    results = c.fetch_many(sys.argv[2:], sys.argv[1])
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "files": len(results)}))
"""

PKG_VERSIONS = """
import json, sys, time
t0 = time.perf_counter()
import pkgloader
t1 = time.perf_counter()
with pkgloader.Client() as c:
    infos = c.versions(sys.argv[1])
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "versions": len(infos)}))
"""

WARG_VALIDATE = """
import json, sys
from pkgloader.backends.warg._bench import bench_validate_package_log
r = bench_validate_package_log(int(sys.argv[1]), repeat=1)
print("BENCH " + json.dumps({"seconds": r["seconds"], "records": r["records"], "releases": r["releases"]}))
"""


def bench_line(m: Measurement) -> dict[str, Any]:
    for line in reversed(m.stdout.splitlines()):
        if line.startswith("BENCH "):
            return dict(json.loads(line[6:]))
    raise BenchError(f"{Path(m.argv[0]).name} printed no BENCH line; stdout tail: {m.stdout[-300:]!r}")


# --------------------------------------------------------------------------- model


@dataclass
class Published:
    ref: str  # test:name@=1.0.0
    repo: str  # test/name
    tag: str
    digest: str
    size: int

    @property
    def name(self) -> str:
        return self.repo.split("/", 1)[1]


@dataclass
class RunCtx:
    bench: "Bench"
    wdir: Path  # the workload's dir (cwd of every run: a fixed "project dir")
    rdir: Path  # this run's fresh dir (outputs, cache); removed after the run
    round: int
    counts: dict[str, Any] = field(default_factory=dict)  # requests the run made (set after it)


@dataclass
class Tool:
    id: str
    label: str
    role: str  # pkgloader | peer | floor
    command: Callable[[RunCtx], tuple[list[str], dict[str, str]]]
    check: Callable[[RunCtx, Measurement], dict[str, Any]]  # raises BenchError; may return {"in-process": s, ...}
    modes: tuple[str, ...] = ("process",)
    timeout: float = 180.0
    before: Callable[[RunCtx], None] | None = None

    def series(self, mode: str) -> str:
        return f"{self.label} ({mode})"


@dataclass
class Pair:
    pkgloader: str  # series name
    peer: str
    max_ratio: float | None  # pkgloader/peer time ratio must be <= this; None: informational
    target: str = ""


@dataclass
class Check:
    name: str
    evaluate: Callable[["WorkloadResult"], tuple[str, str, bool]]  # -> (measured, target, ok)


@dataclass
class Workload:
    name: str
    title: str
    needs: tuple[str, ...]
    tools: Callable[[], list[Tool]]  # built when the workload runs (after seeding)
    pairs: list[Pair] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    setup: Callable[[Path], None] | None = None
    size: int | None = None  # bytes per fetch (throughput column)
    show_rss: bool = False


@dataclass
class Series:
    name: str
    role: str
    mode: str
    samples: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)  # the loopback servers' CPU during each run
    extras: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self, size: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role, "mode": self.mode, "samples": self.samples}
        if self.samples:
            out.update(median=self.median, min=min(self.samples), max=max(self.samples))
            if size:
                out["throughput_mib_s"] = size / MiB / self.median
        out.update(process_wall=self.wall, cpu_seconds=self.cpu, server_cpu_seconds=self.server_cpu, rss_kib=self.rss_kib,
                   peak_rss_kib=max(self.rss_kib) if self.rss_kib else None, extras=self.extras)
        return out


@dataclass
class WorkloadResult:
    workload: Workload
    series: dict[str, Series] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    pairs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def evaluate(self) -> None:
        for p in self.workload.pairs:
            a, b = self.series.get(p.pkgloader), self.series.get(p.peer)
            if not a or not b or not a.samples or not b.samples:
                continue
            ratio = a.median / b.median if b.median > 0 else math.inf
            ok = None if p.max_ratio is None else ratio <= p.max_ratio
            self.pairs.append({"pkgloader": p.pkgloader, "peer": p.peer, "ratio": ratio, "max_ratio": p.max_ratio,
                               "target": p.target, "ok": ok})
        for c in self.workload.checks:
            try:
                measured, target, ok = c.evaluate(self)
            except Exception as exc:  # noqa: BLE001 - a check that cannot be computed is a miss
                measured, target, ok = f"cannot evaluate: {exc}", "", False
            self.checks.append({"name": c.name, "measured": measured, "target": target, "ok": ok})

    def to_json(self) -> dict[str, Any]:
        w = self.workload
        return {"name": w.name, "title": w.title, "status": "ok" if self.ok else "failed", "error": self.error,
                "seconds": self.seconds, "size_bytes": w.size,
                "series": [s.to_json(w.size) for s in self.series.values()],
                "pairs": self.pairs, "checks": self.checks}


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, workdir: Path, setup: str = "ghcr",
                 content: Path | None = None) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        self.setup = setup
        self.targets = TARGETS[setup]
        self.content = content or workdir / "content"  # shared by the set-ups of one run
        self.python = sys.executable
        script = Path(sys.executable).parent / "pkgloader"
        self.pkgloader = [str(script)] if script.is_file() else [sys.executable, "-m", "pkgloader"]
        self.servers: PlainSetup | GhcrSetup | None = None
        self.published: dict[str, Published] = {}
        self.multi: list[Published] = []
        self.many: list[str] = []  # versions of test:many
        self.home = workdir / "home"
        self.env: dict[str, str] = {}
        self.cfg_direct = workdir / "pkgloader-direct.toml"
        self.cfg_proxy = workdir / "pkgloader-proxy.toml"
        self.cfg_seed = workdir / "pkgloader-seed.toml"  # publishing: straight to the registry, as alice on ghcr
        self.setup_seconds: dict[str, float] = {}
        self.load_start = list(os.getloadavg())

    # -- environment ---------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        drop_prefix = ("PKGLOADER_", "WKG_", "REGISTRY_", "CARGO_COMPONENT_")
        proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        # PYTHONDONTWRITEBYTECODE (set on some CI/sandbox machines) would make every Python
        # process compile its imports from source: users have bytecode caches, so do we
        drop = proxies | {"pythondontwritebytecode"}
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix) and k.lower() not in drop}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                   XDG_CACHE_HOME=str(self.home / ".cache"), XDG_DATA_HOME=str(self.home / ".local/share"),
                   DOCKER_CONFIG=str(self.home / ".docker"), NO_PROXY="*", no_proxy="*")
        return env

    def pkg_env(self, cache: Path, *, via_proxy: bool = False) -> dict[str, str]:
        """pkgloader's environment: the config naming the registry (``via_proxy``: the host
        that counts requests) and the CA (ghcr: ``SSL_CERT_FILE``, as a user would set it)."""
        assert self.servers is not None
        env = dict(self.env)
        env.update(self.servers.pkg_env())
        env["PKGLOADER_CONFIG"] = str(self.cfg_proxy if via_proxy else self.cfg_direct)
        env["PKGLOADER_CACHE_DIR"] = str(cache)
        return env

    def oras_env(self) -> dict[str, str]:
        assert self.servers is not None
        return {**self.env, **self.servers.oras_env()}

    # -- set-up --------------------------------------------------------------------

    def start(self, needs: set[str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".docker").mkdir(exist_ok=True)
        self.env = self.base_env()
        if not needs:
            return
        t = time.perf_counter()
        cls = GhcrSetup if self.setup == "ghcr" else PlainSetup
        self.servers = cls(self.workdir / "servers", page_size=self.sizes.page_size).start()
        self.cfg_direct.write_text(self.servers.tool_config(self.servers.fetch_host))
        self.cfg_proxy.write_text(self.servers.tool_config(self.servers.counted_host))
        self.cfg_seed.write_text(self.servers.seed_config())
        self.cfg_seed.chmod(0o600)
        self.setup_seconds["registry"] = time.perf_counter() - t
        self.seed(needs)

    def stop(self) -> None:
        servers, self.servers = self.servers, None
        if servers is not None:
            servers.stop()

    def _client(self) -> Any:
        try:
            from pkgloader import Client, Config
        except ImportError as exc:
            raise BenchError(f"cannot import pkgloader with {sys.executable} ({exc}); run with .venv/bin/python") from None
        cfg = Config.load(config_files=[self.cfg_seed], env={}, use_global=False, use_project=False)
        return Client(cfg, cache_dir=self.workdir / "publish-cache")

    def seed(self, needs: set[str]) -> None:
        content = self.content
        content.mkdir(exist_ok=True)
        jobs: list[tuple[Path, str]] = []  # (file, ns:name@=version), distinct content: published in parallel
        serial: list[tuple[Path, str]] = []  # the same content under many tags: one at a time (see below)
        t = time.perf_counter()
        interfaces = 0
        if needs & {"wit", "multi"}:
            probed = content / "interfaces.txt"  # the other set-up of this run probed already
            if probed.is_file():
                interfaces = int(probed.read_text())
            else:
                interfaces, _ = wit_interfaces_for(content / "probe", self.sizes.wit_bytes)
                probed.write_text(str(interfaces))
        if "wit" in needs:
            jobs.append((_built(content, "test", "wit", interfaces), "test:wit@=1.0.0"))
        if "multi" in needs:
            def build(i: int) -> tuple[Path, str]:
                name = f"small-p{i}"
                return _built(content, "test", name, interfaces), f"test:{name}@=1.0.0"
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                jobs += list(pool.map(build, range(self.sizes.multi)))
        for name, size in self.sizes.components.items():
            if name in needs:
                path = content / f"{name}.wasm"
                if not (path.is_file() and path.stat().st_size == size):  # the other set-up made it
                    write_component(path, size, seed=name.encode())
                jobs.append((path, f"test:{name}@=1.0.0"))
        if "tags" in needs:
            many = content / "many.wasm"
            write_component(many, 2 * KiB, seed=b"many")
            self.many = [f"1.{i // 100}.{i % 100}" for i in range(self.sizes.tags)]
            serial.append((many, f"test:many@={self.many[0]}"))  # the others: add_tags below
        self.setup_seconds["content"] = time.perf_counter() - t

        t = time.perf_counter()
        with self._client() as client:
            def publish(job: tuple[Path, str]) -> tuple[str, Any]:
                return job[1], client.publish(job[0], job[1])
            pool = ThreadPoolExecutor(max_workers=8)
            try:
                results = list(pool.map(publish, jobs))
            finally:  # on Ctrl-C: drop what has not started (the registry stops right after)
                pool.shutdown(wait=False, cancel_futures=True)
            # test:many's content also differs from every other job's (its own seed), but it
            # goes last, alone: its other tags are written into the registry's storage
            results += [publish(job) for job in serial]
        for ref, res in results:
            pkg = ref.split("@", 1)[0]
            if pkg == "test:many":
                repo = res.reference.split("/", 1)[1].rsplit(":", 1)[0]
                add_tags(self.servers.storage_dir, repo, res.manifest_digest, self.many[1:])  # type: ignore[union-attr]
            rec = Published(ref, res.reference.split("/", 1)[1].rsplit(":", 1)[0], res.version, res.layer_digest, res.size)
            if pkg.startswith("test:small-p"):
                self.multi.append(rec)
            elif pkg != "test:many":
                self.published[pkg.split(":", 1)[1]] = rec
        self.multi.sort(key=lambda p: int(p.name.rsplit("p", 1)[1]))
        self.setup_seconds["publish"] = time.perf_counter() - t
        self.setup_seconds["published_versions"] = float(len(jobs) + len(serial) + max(0, len(self.many) - 1))

    # -- measuring -----------------------------------------------------------------

    def run(self, w: Workload, runs: int, warmup: int) -> WorkloadResult:
        res = WorkloadResult(w)
        t0 = time.perf_counter()
        wdir = self.workdir / "runs" / w.name
        logs = wdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            tools = w.tools()
        except (KeyError, BenchError) as exc:
            res.error = f"set-up of {w.name} failed: {exc!r}"
            return res
        for tool in tools:
            for mode in tool.modes:
                res.series[tool.series(mode)] = Series(tool.series(mode), tool.role, mode)
        try:
            if w.setup is not None:
                w.setup(wdir)
            for rnd in range(warmup + runs):
                counted = rnd >= warmup
                for tool in tools:  # alternation: A B C A B C ...
                    rdir = wdir / f"r{rnd}-{tool.id}"
                    rdir.mkdir()
                    ctx = RunCtx(self, wdir, rdir, rnd)
                    try:
                        argv, env = tool.command(ctx)  # (curl's token is fetched here: not counted)
                        if tool.before is not None:
                            tool.before(ctx)
                        if self.servers is not None:
                            self.servers.mark()
                        srv0 = self.servers.server_cpu() if self.servers is not None else 0.0
                        m = measure(argv, env=env, cwd=wdir, logs=logs / rdir.name, timeout=tool.timeout)
                        srv = self.servers.server_cpu() - srv0 if self.servers is not None else 0.0
                        failure = m.failure()
                        if failure:
                            raise BenchError(f"{tool.label} failed in round {rnd}: {failure}\n  command: {_argv_text(argv)}")
                        # requests this run made (front, CDN, token server; plain: the proxy)
                        ctx.counts = self.servers.counts() if self.servers is not None else {}
                        extra = {"requests": ctx.counts, **tool.check(ctx, m)}
                    finally:
                        shutil.rmtree(rdir, ignore_errors=True)
                        if w.size is not None and w.size >= SETTLE_MIN:
                            _settle()
                    if not counted:
                        continue
                    for mode in tool.modes:
                        s = res.series[tool.series(mode)]
                        s.samples.append(m.seconds if mode == "process" else float(extra["in-process"]))
                        s.wall.append(m.seconds)
                        s.rss_kib.append(m.maxrss_kib)
                        s.cpu.append(m.utime + m.stime)
                        s.server_cpu.append(srv)
                        s.extras.append({k: v for k, v in extra.items() if k != "in-process"})
        except BenchError as exc:
            res.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken workload must not lose the others' results
            render = getattr(exc, "render", None)
            res.error = f"{type(exc).__name__}: {render() if callable(render) else exc}"
        finally:
            res.seconds = time.perf_counter() - t0
        if res.ok:
            res.evaluate()
        return res

    # -- tool builders -------------------------------------------------------------

    def cli_fetch(self, pub: Published, *, via_proxy: bool = False, warm_cache: Path | None = None) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            cache = warm_cache if warm_cache is not None else ctx.rdir / "cache"
            return ([*self.pkgloader, "fetch", pub.ref, "-o", str(ctx.rdir / "out.wasm"), "-q"],
                    self.pkg_env(cache, via_proxy=via_proxy))

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_file(ctx.rdir / "out.wasm", pub, "pkgloader")
            return {}

        return Tool("pkgloader", "pkgloader CLI", "pkgloader", command, check, timeout=_timeout(pub.size))

    def oras_pull(self, pubs: list[Published], host: str | None = None) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            h = host or self.servers.fetch_host  # type: ignore[union-attr]
            return ([self.python, "-c", ORAS_PULL, str(ctx.rdir / "oras"), *[f"{h}/{p.repo}:{p.tag}" for p in pubs]],
                    self.oras_env())

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            for p in pubs:
                verify_file(ctx.rdir / "oras" / f"{p.name}.wasm", p, "oras-py")
            return {"in-process": data["seconds"], "import": data["import"], "call": data["call"]}

        size = sum(p.size for p in pubs)
        return Tool("oras", "oras-py", "peer", command, check, modes=("process", "in-process"), timeout=_timeout(size))

    def skopeo(self, pub: Published) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            assert self.servers is not None
            return ([find_binary("skopeo"), "--insecure-policy", "copy", *self.servers.skopeo_args(),
                     f"docker://{self.servers.fetch_host}/{pub.repo}:{pub.tag}", f"dir:{ctx.rdir / 'skopeo'}"],
                    self.env)

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_file(ctx.rdir / "skopeo" / pub.digest.split(":", 1)[1], pub, "skopeo")
            return {}

        return Tool("skopeo", "skopeo copy", "peer", command, check, timeout=_timeout(pub.size))

    def curl(self, pub: Published) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            assert self.servers is not None
            url = self.servers.blob_url(pub.repo, pub.digest)
            return ([find_binary("curl"), "-s", "-f", *self.servers.curl_args(pub.repo), "-o", str(ctx.rdir / "curl.wasm"), url],
                    self.env)

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_file(ctx.rdir / "curl.wasm", pub, "curl")
            return {}

        return Tool("curl", "curl -o", "peer", command, check, timeout=_timeout(pub.size))

    def http_floor(self, pubs: list[Published]) -> Tool:
        """The minimal http.client loop (``HTTP_FLOOR``): a reference row, not a peer."""
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            assert self.servers is not None
            scheme = "https" if self.servers.https else "http"
            return ([self.python, "-c", HTTP_FLOOR, str(ctx.rdir / "floor"), scheme, self.servers.fetch_host,
                     *[f"{p.repo}:{p.tag}" for p in pubs]], self.oras_env())

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            for p in pubs:
                verify_file(ctx.rdir / "floor" / f"{p.name}.wasm", p, "http.client loop")
            return {}

        return Tool("httpfloor", "http.client loop, no cache", "floor", command, check,
                    timeout=_timeout(sum(p.size for p in pubs)))

    def floor(self) -> Tool:
        return Tool("floor", "python -c pass", "floor", lambda ctx: ([self.python, "-c", "pass"], self.env),
                    lambda ctx, m: {})


def _built(content: Path, namespace: str, name: str, interfaces: int) -> Path:
    """The WIT package built by ``build_wit_package`` (once per run: both set-ups use it)."""
    out = content / f"{namespace}-{name}-1.0.0.wasm"
    if out.is_file():
        return out
    return build_wit_package(content, namespace, name, "1.0.0", interfaces=interfaces)


#: after a run that wrote this much, let the machine settle before the next tool starts
SETTLE_MIN = 64 * MiB


def _settle() -> None:
    """Flush and let deferred work from the last run finish (writeback, the journal
    commit and discards of the deleted files) so it does not land on the next tool's
    clock. Every tool gets the same treatment."""
    os.sync()
    time.sleep(0.5)


def _timeout(size: int) -> float:
    return 120.0 + size / (5 * MiB)  # generous: 5 MiB/s worst case on top of two minutes


def _argv_text(argv: list[str]) -> str:
    return " ".join(a if len(a) < 120 and "\n" not in a else "'<program>'" for a in argv)


def verify_file(path: Path, pub: Published, who: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BenchError(f"{who} wrote no {path.name} for {pub.ref}") from None
    if size != pub.size:
        raise BenchError(f"{who} wrote {size} bytes to {path.name} for {pub.ref}, expected {pub.size}")
    if size <= 8 * MiB and sha256_file(path) != pub.digest:
        raise BenchError(f"{who} wrote content for {pub.ref} that does not match {pub.digest}")


# --------------------------------------------------------------------------- workloads


def fmt_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1024
    return str(n)


def rss_check(series: str) -> Check:
    def evaluate(r: WorkloadResult) -> tuple[str, str, bool]:
        peak = max(r.series[series].rss_kib)
        return f"{peak / 1024:.1f} MiB", f"≤ {RSS_LIMIT_KIB // 1024} MiB", peak <= RSS_LIMIT_KIB
    return Check(f"peak RSS, {series}", evaluate)


def token_check(series: list[str], repos: int) -> Check:
    """Every run of every ``series`` made exactly one token request per repository scope
    (``repos`` scopes), counted at the token server; oras-py's count is shown beside it."""
    def evaluate(r: WorkloadResult) -> tuple[str, str, bool]:
        bad, seen = [], []
        for name in series:
            got = {(e["requests"].get("token"), e["requests"].get("token_scopes")) for e in r.series[name].extras}
            seen.append(f"{name.split(' (')[0].replace('pkgloader ', '')}: " +
                        ", ".join(f"{n} for {k} scope(s)" for n, k in sorted(got, key=str)))
            if got != {(repos, repos)}:
                bad.append(name)
        peer = next((x for n, x in r.series.items() if n.startswith("oras-py") and x.extras), None)
        if peer is not None:
            n = sorted({e["requests"].get("token") for e in peer.extras}, key=str)
            seen.append(f"oras-py: {'/'.join(map(str, n))}")
        return "; ".join(seen), f"{repos} per process ({repos} repositor{'y' if repos == 1 else 'ies'})", not bad
    return Check("token requests", evaluate)


def cpu_check(pkg_series: str, peer_series: str, limit: float) -> Check:
    """pkgloader's process CPU time (user+sys, wait4 rusage), median, over the peer's."""
    def evaluate(r: WorkloadResult) -> tuple[str, str, bool]:
        a = statistics.median(r.series[pkg_series].cpu)
        p = statistics.median(r.series[peer_series].cpu)
        ratio = a / p if p > 0 else math.inf
        return (f"{fmt_seconds(a)} vs {fmt_seconds(p)} = {ratio:.2f}×", f"≤ {limit}× oras-py's", ratio <= limit)
    return Check(f"CPU user+sys, {pkg_series.split(' (')[0]}", evaluate)


def build_workloads(b: Bench) -> list[Workload]:
    s = b.sizes
    t = b.targets
    out: list[Workload] = []
    cli = "pkgloader CLI (process)"
    oras_p, oras_i = "oras-py (process)", "oras-py (in-process)"
    floor_series = "http.client loop, no cache (process)"

    # -- verified fetch of a component to a file -----------------------------------------
    for wname, pkg, targeted in (("fetch-1mib", "comp-s", False), ("fetch-100mib", "comp-m", True),
                                 ("fetch-1gib", "comp-l", True)):
        size = s.components[pkg]

        def tools(pkg: str = pkg) -> list[Tool]:
            pub = b.published[pkg]
            return [b.cli_fetch(pub), b.oras_pull([pub]), b.skopeo(pub), b.curl(pub), b.http_floor([pub])]

        pairs = [
            Pair(cli, oras_p, t.fetch_oras if targeted else None, t.fetch_text[0] if targeted else ""),
            Pair(cli, oras_i, None),
            Pair(cli, "skopeo copy (process)", None),
            Pair(cli, "curl -o (process)", t.fetch_curl if targeted else None, t.fetch_text[1] if targeted else ""),
            Pair(cli, floor_series, None),
        ]
        checks = [rss_check(cli)] if targeted else []
        if t.tokens:
            checks.append(token_check([cli], 1))
        out.append(Workload(wname, f"verified fetch of a {fmt_size(size)} component to a file", (pkg,),
                            tools, pairs, checks, size=size, show_rss=True))

    # -- the small WIT package: cold and warm -----------------------------------------------
    def cold_tools() -> list[Tool]:
        pub = b.published["wit"]
        return [b.cli_fetch(pub), b.oras_pull([pub]), b.skopeo(pub), b.curl(pub), b.floor()]

    out.append(Workload(
        "cold-small", "cold fetch of the ~40 KB WIT package, whole process", ("wit",), cold_tools,
        [Pair(cli, oras_p, t.cold, f"≤ {t.cold}×"), Pair(cli, oras_i, None),
         Pair(cli, "skopeo copy (process)", None), Pair(cli, "curl -o (process)", None),
         Pair(cli, "python -c pass (process)", None)],
        [token_check([cli], 1)] if t.tokens else []))

    warm_cache = b.workdir / "runs" / "warm-small" / "cache"

    def warm_setup(wdir: Path) -> None:
        # fill the cache through the counting host (not timed); every warm run then counts from zero
        pub = b.published["wit"]
        argv = [*b.pkgloader, "fetch", pub.ref, "-o", str(wdir / "fill.wasm"), "-q"]
        assert b.servers is not None
        b.servers.mark()
        m = measure(argv, env=b.pkg_env(warm_cache, via_proxy=True), cwd=wdir, logs=wdir / "logs" / "fill", timeout=120)
        if m.failure():
            raise BenchError(f"filling the warm cache failed: {m.failure()}")
        verify_file(wdir / "fill.wasm", pub, "pkgloader (cache fill)")
        if b.servers.counts()["registry"] == 0:
            raise BenchError("the cache-filling fetch made no request through the counting host")

    def warm_tools() -> list[Tool]:
        return [b.cli_fetch(b.published["wit"], via_proxy=True, warm_cache=warm_cache), b.floor()]

    def zero_requests(r: WorkloadResult) -> tuple[str, str, bool]:
        total: dict[str, int] = {}
        paths: list[str] = []
        for e in r.series[cli].extras:
            for k, v in e["requests"].items():
                if k in ("registry", "cdn", "token"):
                    total[k] = total.get(k, 0) + v
            paths += e["requests"].get("paths", [])
        n = sum(total.values())
        where = " + ".join(f"{k} {v}" for k, v in total.items())
        return (f"{n} request(s) in all warm runs ({where})" + (f": {', '.join(paths[:3])}" if paths else ""),
                "0", n == 0)

    out.append(Workload(
        "warm-small", "warm fetch of a cached exact version, whole process", ("wit",), warm_tools,
        [Pair(cli, "python -c pass (process)", t.warm, f"≤ {t.warm}×")],
        [Check("HTTP requests, warm fetch", zero_requests)], setup=warm_setup))

    # -- many packages cold in one call -------------------------------------------------------
    lib_i, lib_p = "pkgloader library (in-process)", "pkgloader library (process)"

    def multi_tools() -> list[Tool]:
        pubs = b.multi
        refs = [p.ref for p in pubs]

        def cli_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [*b.pkgloader, "fetch", *refs, "-o", f"{ctx.rdir / 'out'}/", "-q"], b.pkg_env(ctx.rdir / "cache")

        def lib_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", PKG_FETCH_MANY, str(ctx.rdir / "out"), *refs], b.pkg_env(ctx.rdir / "cache")

        def verify_out(ctx: RunCtx, who: str) -> None:
            for p in pubs:
                verify_file(ctx.rdir / "out" / f"test_{p.name}@1.0.0.wasm", p, who)

        def cli_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_out(ctx, "pkgloader CLI")
            return {}

        def lib_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            verify_out(ctx, "pkgloader library")
            return {"in-process": data["seconds"], "import": data["import"], "call": data["call"]}

        total = sum(p.size for p in pubs)
        return [Tool("pkgloader", "pkgloader CLI", "pkgloader", cli_cmd, cli_check, timeout=_timeout(total)),
                Tool("library", "pkgloader library", "pkgloader", lib_cmd, lib_check, modes=("in-process", "process"),
                     timeout=_timeout(total)),
                b.oras_pull(pubs), b.http_floor(pubs)]

    multi_checks = []
    if t.multi_cpu is not None:
        multi_checks += [cpu_check(cli, oras_p, t.multi_cpu), cpu_check(lib_p, oras_p, t.multi_cpu)]
    if t.tokens:
        multi_checks.append(token_check([cli, lib_p], s.multi))
    out.append(Workload(
        "multi-cold", f"{s.multi} packages cold in one call (oras-py: {s.multi} sequential pulls in one process)",
        ("multi",), multi_tools,
        [Pair(cli, oras_p, t.multi, f"≤ {t.multi}×"), Pair(lib_i, oras_i, t.multi, f"≤ {t.multi}×"),
         Pair(cli, floor_series, None)], multi_checks))

    # -- a paginated tag list -------------------------------------------------------------------
    pages = math.ceil(s.tags / s.page_size)

    def tag_tools() -> list[Tool]:
        assert b.servers is not None
        host = b.servers.counted_host

        def cli_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return ([*b.pkgloader, "versions", "test:many", "--all", "--json"],
                    b.pkg_env(ctx.rdir / "cache", via_proxy=True))

        def cli_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            try:
                versions = len(json.loads(m.stdout)["versions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BenchError(f"pkgloader versions --json printed no version list ({exc}): {m.stdout[:200]!r}") from None
            return {"versions": versions, "pages": ctx.counts["tag_pages"]}

        def lib_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", PKG_VERSIONS, "test:many"], b.pkg_env(ctx.rdir / "cache", via_proxy=True)

        def inproc_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            return {"in-process": data["seconds"], "import": data["import"], "call": data["call"],
                    "versions": data["versions"], "pages": ctx.counts["tag_pages"]}

        def oras_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", ORAS_TAGS, f"{host}/test/many"], b.oras_env()

        return [Tool("pkgloader", "pkgloader CLI", "pkgloader", cli_cmd, cli_check),
                Tool("library", "pkgloader library", "pkgloader", lib_cmd, inproc_check, modes=("in-process", "process")),
                Tool("oras", "oras-py", "peer", oras_cmd, inproc_check, modes=("process", "in-process"))]

    def listed(r: WorkloadResult) -> tuple[str, str, bool]:
        bad = []
        for s_ in r.series.values():
            got = {(e.get("versions"), e.get("pages")) for e in s_.extras}
            if got != {(s.tags, pages)}:
                bad.append(f"{s_.name}: {sorted(got, key=str)}")
        measured = "; ".join(bad) if bad else f"every run: {s.tags} versions over {pages} pages"
        return measured, f"{s.tags} versions, {pages} pages", not bad

    tag_checks = [Check("all versions listed", listed)]
    if t.tokens:
        tag_checks.append(token_check([cli, lib_p], 1))
    front = "the ghcr-like front" if b.setup == "ghcr" else "paging proxy"
    out.append(Workload(
        "tags-paged", f"{s.tags} tags over {pages} pages of {s.page_size} ({front})", ("tags",), tag_tools,
        [Pair(cli, oras_p, t.tags, f"≤ {t.tags}×"), Pair(lib_i, oras_i, t.tags, f"≤ {t.tags}×")], tag_checks))

    # -- warg log validation ----------------------------------------------------------------------
    def warg_tools() -> list[Tool]:
        def cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", WARG_VALIDATE, str(s.warg_records)], b.pkg_env(ctx.rdir / "cache")

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            if data.get("records") != s.warg_records:
                raise BenchError(f"warg benchmark validated {data.get('records')} records, expected {s.warg_records}")
            return {"in-process": data["seconds"], "records": data["records"]}

        return [Tool("warg", "warg validate", "pkgloader", cmd, check, modes=("in-process", "process"))]

    def warg_limit(r: WorkloadResult) -> tuple[str, str, bool]:
        med = r.series["warg validate (in-process)"].median
        return fmt_seconds(med), "≤ 1.5 s", med <= 1.5

    out.append(Workload(
        "warg-validate", f"warg: validate a {s.warg_records}-record package log (in-process: validation only; "
        "process: key generation, signing and validation)", (), warg_tools, [],
        [Check(f"validate {s.warg_records} records", warg_limit)]))
    return out


# --------------------------------------------------------------------------- reporting


def fmt_seconds(x: float) -> str:
    if x < 1:
        return f"{x * 1000:.1f} ms"
    return f"{x:.2f} s"


#: CPU: median user+sys of the process (wait4), shown on (process) rows only: on a machine
#: shared with other work it is distorted far less than wall time
HEADERS = ("workload", "series", "median", "min–max", "CPU", "servers' CPU", "MiB/s", "peak RSS", "pkgloader/peer",
           "target", "result")


def table_rows(results: list[WorkloadResult]) -> list[tuple[str, ...]]:
    """One row per series (ratio and target on the peer's row) and one per check; a check
    row has "check: NAME" in the series column and its measured value in the median column."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        w = r.workload
        if not r.ok:
            rows.append((w.name, "FAILED TO RUN", "", "", "", "", "", "", "", "", "ERROR"))
            continue
        pair_of: dict[str, dict[str, Any]] = {}
        for pr in r.pairs:
            pair_of.setdefault(pr["peer"], pr)
        first = True
        for s in r.series.values():
            if not s.samples:
                continue
            p = pair_of.get(s.name)
            ratio = target = result = ""
            if p:
                short = "lib" if "library" in p["pkgloader"] else "CLI"
                ratio = f"{p['ratio']:.2f} ({short})"
                if p["max_ratio"] is not None:
                    target = p["target"] if p["target"].startswith("≤") else f"{p['target']}: ≤ {p['max_ratio']:.2f}"
                    result = "PASS" if p["ok"] else "MISS"
            mibs = ""
            if w.size:
                rate = w.size / MiB / s.median
                mibs = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
            rss = f"{max(s.rss_kib) / 1024:.0f} MiB" if (w.show_rss and s.mode == "process") else ""
            cpu = fmt_seconds(statistics.median(s.cpu)) if s.mode == "process" and s.cpu else ""
            srv = fmt_seconds(statistics.median(s.server_cpu)) if s.mode == "process" and s.server_cpu else ""
            rows.append((w.name if first else "", s.name, fmt_seconds(s.median),
                         f"{fmt_seconds(min(s.samples))}–{fmt_seconds(max(s.samples))}", cpu, srv, mibs, rss, ratio,
                         target, result))
            first = False
        for c in r.checks:
            rows.append(("", f"check: {c['name']}", c["measured"], "", "", "", "", "", "", c["target"],
                         "PASS" if c["ok"] else "MISS"))
    return rows


def render_text(rows: list[tuple[str, ...]]) -> str:
    series_rows = [r for r in rows if not r[1].startswith("check: ")]
    widths = [max([len(h)] + [len(r[i]) for r in series_rows]) for i, h in enumerate(HEADERS)]
    widths[1] = max([widths[1]] + [len(r[1]) for r in rows])
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(HEADERS)), "  ".join("-" * w for w in widths)]
    for r in rows:
        if r[1].startswith("check: "):  # the measured value may be long: let it run on
            head = "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:2]))
            out.append(f"{head}  {r[2]}   target {r[9]}   {r[10]}")
        else:
            out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def render_markdown(tables: list[tuple["Bench", list[WorkloadResult]]], meta: dict[str, Any]) -> str:
    lines = [
        "# pkgloader benchmark",
        "",
        f"{meta['date']} · pkgloader {meta['pkgloader']} ({meta['git']}) · oras-py {meta['oras']} · Python "
        f"{meta['python']} · {meta['cpus']} CPUs (load {meta['load_average_start'][0]:.1f} at the start, "
        f"{meta['load_average_end'][0]:.1f} at the end) · runs {meta['runs']}, warm-up {meta['warmup']}"
        + (" · quick" if meta["quick"] else "") + (" · **tiny sizes (smoke test)**" if meta["tiny"] else ""),
        "",
        "Times are medians; the ratio is pkgloader's median over the peer's (below 1: pkgloader is faster). "
        "(process) = the whole process; (in-process) = importing the library + the call, timed inside it. "
        f"Peak RSS is per process (floor: {meta['rss_floor_kib'] / 1024:.0f} MiB, the measuring helper). "
        "CPU is user+sys of the process (wait4); servers' CPU is what the loopback servers (front, CDN, token "
        "server, docker-registry) used during the same runs, on the same CPUs.",
    ]
    for bench, results in tables:
        esc = [tuple(c.replace("|", "\\|") for c in r) for r in table_rows(results)]
        lines += ["", f"## {bench.setup}: {SETUP_TITLES[bench.setup]}", "",
                  "| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        lines.append("")
        for r in results:
            lines.append(f"- **{r.workload.name}**: {r.workload.title}" + (f" — **failed**: `{r.error}`" if r.error else ""))
    return "\n".join(lines) + "\n"


SETUP_TITLES = {"ghcr": GhcrSetup.title, "plain": PlainSetup.title}


def _version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def metadata(args: argparse.Namespace, sizes: Sizes, benches: list[Bench], load_start: list[float]) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        oras_version = version("oras")
    except Exception:  # noqa: BLE001
        oras_version = "?"
    try:
        from pkgloader import __version__ as pkg_version
    except Exception:  # noqa: BLE001
        pkg_version = "?"
    git = _version_of(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "pkgloader"],
                           capture_output=True, text=True).stdout.strip()
    first = benches[0]
    floor = measure(["true"], env=first.env or os.environ, cwd=first.workdir, logs=first.workdir / "floor", timeout=30)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pkgloader": pkg_version,
        "git": git + ("+uncommitted pkgloader changes" if dirty else ""),
        "oras": oras_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "warmup": args.warmup,
        "quick": args.quick,
        "tiny": args.tiny,
        "setups": [b.setup for b in benches],
        "sizes": {"wit_bytes": sizes.wit_bytes, "components": sizes.components, "multi": sizes.multi,
                  "tags": sizes.tags, "page_size": sizes.page_size, "warg_records": sizes.warg_records},
        "published_wit_bytes": next((b.published["wit"].size for b in benches if "wit" in b.published), None),
        "setup_seconds": {b.setup: b.setup_seconds for b in benches},
        "pkgloader_command": first.pkgloader,
        "rss_floor_kib": floor.maxrss_kib,
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
        "tools": {
            "skopeo": _version_of([shutil.which("skopeo") or "skopeo", "--version"]),
            "curl": _version_of([shutil.which("curl") or "curl", "--version"]),
            "docker-registry": _version_of([shutil.which("docker-registry") or "docker-registry", "--version"]),
        },
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0] if __doc__ else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", choices=("ghcr", "plain", "both"), default="ghcr",
                   help="ghcr: HTTPS + token auth + CDN redirects + paged tags (default); plain: plain-HTTP "
                        "anonymous registry; both: one table each, ghcr first, in one run")
    p.add_argument("--plain", dest="setup", action="store_const", const="plain", help="the same as --setup plain")
    p.add_argument("--quick", action="store_true", help="skip the 1 GiB case")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="measured runs per tool (default 5)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="discarded warm-up rounds (default 1)")
    p.add_argument("--json", metavar="PATH", help="JSON report (default bench-results/bench-<time>.json)")
    p.add_argument("--markdown", metavar="PATH", help="Markdown table (default bench-results/bench-<time>.md)")
    p.add_argument("--only", metavar="NAME[,NAME]", help="run only these workloads")
    p.add_argument("--keep", action="store_true", help="keep the temporary work dir (printed) for inspection")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test: small sizes, same code paths
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return args


def _select(workloads: list[Workload], args: argparse.Namespace, first: bool) -> list[Workload]:
    if args.quick:
        workloads = [w for w in workloads if w.name != "fetch-1gib"]
    if not first:  # warg validation does not use the registry: measured once per run
        workloads = [w for w in workloads if w.needs]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        workloads = [w for w in workloads if w.name in wanted]
    return workloads


def run_setup(bench: Bench, workloads: list[Workload], args: argparse.Namespace) -> list[WorkloadResult]:
    results: list[WorkloadResult] = []
    needs = {n for w in workloads for n in w.needs}
    print(f"[{bench.setup}] {SETUP_TITLES[bench.setup]}: {len(workloads)} workload(s)", file=sys.stderr)
    setup_error = None
    try:
        t = time.perf_counter()
        bench.start(needs)
        if needs and bench.servers is not None:
            print(f"  registry {bench.servers.fetch_host} seeded with "
                  f"{int(bench.setup_seconds.get('published_versions', 0))} versions in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
    except BenchError as exc:
        setup_error = f"set-up failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - e.g. a pkgloader error while publishing
        render = getattr(exc, "render", None)
        setup_error = f"set-up failed: {type(exc).__name__}: {render() if callable(render) else exc}"
    for w in workloads:
        if setup_error:
            r = WorkloadResult(w, error=setup_error)
        else:
            print(f"  {w.name}: {w.title} ...", file=sys.stderr, flush=True)
            r = bench.run(w, args.runs, args.warmup)
            print(f"    {'done' if r.ok else 'FAILED'} in {r.seconds:.1f} s" + (f": {r.error}" if r.error else ""),
                  file=sys.stderr, flush=True)
        results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = TINY if args.tiny else FULL
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else REPO / "bench-results" / f"bench-{stamp}.json"
    md_path = Path(args.markdown) if args.markdown else json_path.with_suffix(".md")
    setups = ["ghcr", "plain"] if args.setup == "both" else [args.setup]

    workdir = Path(tempfile.mkdtemp(prefix="pkgloader-bench-"))
    content = workdir / "content"
    benches = [Bench(args, sizes, workdir / name, name, content) for name in setups]
    plans = [_select(build_workloads(b), args, i == 0) for i, b in enumerate(benches)]
    if args.only:
        names = {w.name for w in build_workloads(benches[0])}
        unknown = [n for n in (x.strip() for x in args.only.split(",")) if n and n not in names]
        if unknown:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"bench.py: error: unknown workload(s) {', '.join(unknown)}; choose from {', '.join(sorted(names))}",
                  file=sys.stderr)
            return 2
    if not any(plans):
        shutil.rmtree(workdir, ignore_errors=True)
        print("bench.py: error: nothing to run (fetch-1gib is skipped by --quick)", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    load_start = list(os.getloadavg())
    tables: list[tuple[Bench, list[WorkloadResult]]] = []
    try:
        print(f"pkgloader bench: set-up(s) {', '.join(setups)}, runs={args.runs}, warm-up={args.warmup}"
              + (" (tiny sizes)" if args.tiny else ""), file=sys.stderr)
        if load_start[0] > (os.cpu_count() or 1) * 0.5:
            print(f"  warning: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs; "
                  "other work on this machine will add noise", file=sys.stderr)
        for bench, workloads in zip(benches, plans):
            bench.workdir.mkdir(parents=True, exist_ok=True)
            try:
                tables.append((bench, run_setup(bench, workloads, args)))
            finally:
                bench.stop()  # one set-up's servers at a time
        meta = metadata(args, sizes, benches, load_start)
    except KeyboardInterrupt:
        print("\nbench.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for bench in benches:
            bench.stop()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report_tables = []
    failed: list[str] = []
    missed: list[str] = []
    for bench, results in tables:
        print(f"\n{bench.setup}: {SETUP_TITLES[bench.setup]}\n")
        print(render_text(table_rows(results)))
        t_failed = [r.workload.name for r in results if not r.ok]
        t_missed = sorted({r.workload.name for r in results for x in r.pairs + r.checks if x["ok"] is False})
        failed += [f"{bench.setup}/{n}" for n in t_failed]
        missed += [f"{bench.setup}/{n}" for n in t_missed]
        report_tables.append({"setup": bench.setup, "title": SETUP_TITLES[bench.setup],
                              "workloads": [r.to_json() for r in results],
                              "summary": {"failed": t_failed, "missed": t_missed,
                                          "completed": [r.workload.name for r in results if r.ok]}})
    report = {"meta": meta, "tables": report_tables, "summary": {"failed": failed, "missed": missed}}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(tables, meta))
    print(f"\nreport: {json_path}\ntable:  {md_path}")
    if missed:
        print(f"targets missed in: {', '.join(missed)}")
    if failed:
        print(f"workloads that failed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""pkgloader against its peers, on a real OCI registry on loopback.

    .venv/bin/python scripts/bench.py --quick          # everything but the 1 GiB case
    .venv/bin/python scripts/bench.py                  # the full run (needs ~4 GiB of free disk)
    .venv/bin/python scripts/bench.py --only cold-small,warm-small --runs 9

What it does
------------
1. Starts Debian's ``docker-registry`` on ``127.0.0.1:<free port>`` with a temporary storage
   dir, and a small proxy in front of it that pages ``tags/list`` 100 tags at a time (this
   registry does not paginate) and counts the requests it serves.
2. Seeds it with pkgloader's own ``Client.publish``: a ~40 KB WIT package built with
   ``wasm-tools component wit DIR --wasm``; synthetic components of 1 MiB, 100 MiB and 1 GiB
   (the component preamble and one custom section carrying the payload, streamed to disk);
   50 distinct small WIT packages; one package with 1,500 versions.
3. Runs every workload for pkgloader and its peers in alternation (A B C A B C ...), after
   ``--warmup`` discarded rounds, ``--runs`` times. Every measurement is a fresh process,
   spawned by a tiny helper that reports its wall time and peak RSS (``wait4``); library
   ("in-process") numbers are timed inside that process: importing the library plus the
   call (everything but the interpreter start-up; the JSON report splits the two). After a
   run that wrote 64 MiB or more, its files are deleted and the machine settles (``sync``,
   0.5 s) before the next tool starts, whichever tool it is.
4. Prints medians, min-max, the ratio pkgloader/peer per pair and the target, and writes a
   JSON report and a Markdown table (default ``bench-results/``, git-ignored).

Peers: oras-py (``oras`` from PyPI; as a process and in-process), ``skopeo copy`` to a
``dir:``, ``curl -o FILE`` of the raw blob (verifies nothing), ``python -c pass`` (the
interpreter floor). pkgloader runs as the user runs it: the ``pkgloader`` console script of
this interpreter's environment (``python -m pkgloader`` when there is none). "Cold" means a
fresh empty ``PKGLOADER_CACHE_DIR`` and a fresh output path per run; "warm" means a cache
filled by an earlier (untimed) run. Exact versions (``@=1.0.0``) are fetched, the same
work as pulling a tag.

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
    Measurement,
    PagingProxy,
    Registry,
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


# --------------------------------------------------------------------------- child programs
# Every in-process program prints one last line "BENCH {json}" with "seconds" = importing the
# library + the call, timed inside the process (no interpreter start-up), split into "import"
# and "call", and what it produced. The import is counted because pkgloader defers its HTTP
# stack to the first call (``import pkgloader`` is ~1 ms) while ``import oras.client`` loads
# requests up front (~140 ms): timing only the call would charge pkgloader for imports that
# oras-py is excused from.

ORAS_PULL = """
import json, sys, time
t0 = time.perf_counter()
import oras.client
t1 = time.perf_counter()
c = oras.client.OrasClient(insecure=True)
files = [c.pull(target=t, outdir=sys.argv[1]) for t in sys.argv[2:]]
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "files": sum(len(f) for f in files)}))
"""

ORAS_TAGS = """
import json, sys, time
t0 = time.perf_counter()
import oras.client
t1 = time.perf_counter()
c = oras.client.OrasClient(insecure=True)
tags = c.get_tags(sys.argv[1])
t2 = time.perf_counter()
print("BENCH " + json.dumps({"seconds": t2 - t0, "import": t1 - t0, "call": t2 - t1, "versions": len(set(tags))}))
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
        out.update(process_wall=self.wall, cpu_seconds=self.cpu, rss_kib=self.rss_kib,
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
    def __init__(self, args: argparse.Namespace, sizes: Sizes, workdir: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        self.python = sys.executable
        script = Path(sys.executable).parent / "pkgloader"
        self.pkgloader = [str(script)] if script.is_file() else [sys.executable, "-m", "pkgloader"]
        self.registry: Registry | None = None
        self.proxy: PagingProxy | None = None
        self.published: dict[str, Published] = {}
        self.multi: list[Published] = []
        self.many: list[str] = []  # versions of test:many
        self.home = workdir / "home"
        self.env: dict[str, str] = {}
        self.cfg_direct = workdir / "pkgloader-direct.toml"
        self.cfg_proxy = workdir / "pkgloader-proxy.toml"
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
        env = dict(self.env)
        env["PKGLOADER_CONFIG"] = str(self.cfg_proxy if via_proxy else self.cfg_direct)
        env["PKGLOADER_CACHE_DIR"] = str(cache)
        return env

    @staticmethod
    def _config_text(host: str) -> str:
        return (
            "[namespace_registries]\n"
            f'test = {{ registry = "{host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{host}" }} }} }}\n'
            f'[registry."{host}".oci]\nprotocol = "http"\n'
        )

    # -- set-up --------------------------------------------------------------------

    def start(self, needs: set[str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".docker").mkdir(exist_ok=True)
        self.env = self.base_env()
        if not needs:
            return
        t = time.perf_counter()
        self.registry = Registry(self.workdir / "registry").start()
        self.proxy = PagingProxy(self.registry.host, page_size=self.sizes.page_size).start()
        self.cfg_direct.write_text(self._config_text(self.registry.host))
        self.cfg_proxy.write_text(self._config_text(self.proxy.host))
        self.setup_seconds["registry"] = time.perf_counter() - t
        self.seed(needs)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.registry is not None:
            self.registry.stop()
            self.registry = None

    def _client(self) -> Any:
        try:
            from pkgloader import Client, Config
        except ImportError as exc:
            raise BenchError(f"cannot import pkgloader with {sys.executable} ({exc}); run with .venv/bin/python") from None
        cfg = Config.load(config_files=[self.cfg_direct], env={}, use_global=False, use_project=False)
        return Client(cfg, cache_dir=self.workdir / "publish-cache")

    def seed(self, needs: set[str]) -> None:
        content = self.workdir / "content"
        content.mkdir(exist_ok=True)
        jobs: list[tuple[Path, str]] = []  # (file, ns:name@=version), distinct content: published in parallel
        serial: list[tuple[Path, str]] = []  # the same content under many tags: one at a time (see below)
        t = time.perf_counter()
        interfaces = 0
        if needs & {"wit", "multi"}:
            interfaces, _ = wit_interfaces_for(content / "probe", self.sizes.wit_bytes)
        if "wit" in needs:
            jobs.append((build_wit_package(content, "test", "wit", "1.0.0", interfaces=interfaces), "test:wit@=1.0.0"))
        if "multi" in needs:
            def build(i: int) -> tuple[Path, str]:
                name = f"small-p{i}"
                return build_wit_package(content, "test", name, "1.0.0", interfaces=interfaces), f"test:{name}@=1.0.0"
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                jobs += list(pool.map(build, range(self.sizes.multi)))
        for name, size in self.sizes.components.items():
            if name in needs:
                path = content / f"{name}.wasm"
                write_component(path, size, seed=name.encode())
                jobs.append((path, f"test:{name}@=1.0.0"))
        if "tags" in needs:
            many = content / "many.wasm"
            write_component(many, 2 * KiB, seed=b"many")
            self.many = [f"1.{i // 100}.{i % 100}" for i in range(self.sizes.tags)]
            serial += [(many, f"test:many@={v}") for v in self.many]
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
            # distribution 2.8 can lose a blob when two uploads of the *same* blob race
            # (manifest PUT -> 400 MANIFEST_BLOB_UNKNOWN), so identical content goes one by one
            results += [publish(job) for job in serial]
        for ref, res in results:
            pkg = ref.split("@", 1)[0]
            rec = Published(ref, res.reference.split("/", 1)[1].rsplit(":", 1)[0], res.version, res.layer_digest, res.size)
            if pkg.startswith("test:small-p"):
                self.multi.append(rec)
            elif pkg != "test:many":
                self.published[pkg.split(":", 1)[1]] = rec
        self.multi.sort(key=lambda p: int(p.name.rsplit("p", 1)[1]))
        self.setup_seconds["publish"] = time.perf_counter() - t
        self.setup_seconds["published_versions"] = float(len(jobs) + len(serial))

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
                        argv, env = tool.command(ctx)
                        if tool.before is not None:
                            tool.before(ctx)
                        m = measure(argv, env=env, cwd=wdir, logs=logs / rdir.name, timeout=tool.timeout)
                        failure = m.failure()
                        if failure:
                            raise BenchError(f"{tool.label} failed in round {rnd}: {failure}\n  command: {_argv_text(argv)}")
                        extra = tool.check(ctx, m)
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
            h = host or self.registry.host  # type: ignore[union-attr]
            return ([self.python, "-c", ORAS_PULL, str(ctx.rdir / "oras"), *[f"{h}/{p.repo}:{p.tag}" for p in pubs]],
                    self.env)

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            for p in pubs:
                verify_file(ctx.rdir / "oras" / f"{p.name}.wasm", p, "oras-py")
            return {"in-process": data["seconds"], "import": data["import"], "call": data["call"]}

        size = sum(p.size for p in pubs)
        return Tool("oras", "oras-py", "peer", command, check, modes=("process", "in-process"), timeout=_timeout(size))

    def skopeo(self, pub: Published) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return ([find_binary("skopeo"), "--insecure-policy", "copy", "--src-tls-verify=false",
                     f"docker://{self.registry.host}/{pub.repo}:{pub.tag}", f"dir:{ctx.rdir / 'skopeo'}"],  # type: ignore[union-attr]
                    self.env)

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_file(ctx.rdir / "skopeo" / pub.digest.split(":", 1)[1], pub, "skopeo")
            return {}

        return Tool("skopeo", "skopeo copy", "peer", command, check, timeout=_timeout(pub.size))

    def curl(self, pub: Published) -> Tool:
        def command(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            url = f"{self.registry.url}/v2/{pub.repo}/blobs/{pub.digest}"  # type: ignore[union-attr]
            return [find_binary("curl"), "-s", "-f", "-o", str(ctx.rdir / "curl.wasm"), url], self.env

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            verify_file(ctx.rdir / "curl.wasm", pub, "curl")
            return {}

        return Tool("curl", "curl -o", "peer", command, check, timeout=_timeout(pub.size))

    def floor(self) -> Tool:
        return Tool("floor", "python -c pass", "floor", lambda ctx: ([self.python, "-c", "pass"], self.env),
                    lambda ctx, m: {})


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


def build_workloads(b: Bench) -> list[Workload]:
    s = b.sizes
    out: list[Workload] = []
    cli = "pkgloader CLI (process)"
    oras_p, oras_i = "oras-py (process)", "oras-py (in-process)"

    # -- verified fetch of a component to a file -----------------------------------------
    for wname, pkg, targeted in (("fetch-1mib", "comp-s", False), ("fetch-100mib", "comp-m", True),
                                 ("fetch-1gib", "comp-l", True)):
        size = s.components[pkg]

        def tools(pkg: str = pkg) -> list[Tool]:
            pub = b.published[pkg]
            return [b.cli_fetch(pub), b.oras_pull([pub]), b.skopeo(pub), b.curl(pub)]

        note = "" if wname == "fetch-1gib" else " (1 GiB target)" if targeted else ""
        pairs = [
            Pair(cli, oras_p, 1 / 1.8 if targeted else None, f"throughput ≥ 1.8× oras-py{note}" if targeted else ""),
            Pair(cli, oras_i, None),
            Pair(cli, "skopeo copy (process)", None),
            Pair(cli, "curl -o (process)", 1 / 0.7 if targeted else None, f"throughput ≥ 0.7× curl{note}" if targeted else ""),
        ]
        out.append(Workload(wname, f"verified fetch of a {fmt_size(size)} component to a file", (pkg,),
                            tools, pairs, [rss_check(cli)] if targeted else [], size=size, show_rss=True))

    # -- the small WIT package: cold and warm -----------------------------------------------
    def cold_tools() -> list[Tool]:
        pub = b.published["wit"]
        return [b.cli_fetch(pub), b.oras_pull([pub]), b.skopeo(pub), b.curl(pub), b.floor()]

    out.append(Workload(
        "cold-small", "cold fetch of the ~40 KB WIT package, whole process", ("wit",), cold_tools,
        [Pair(cli, oras_p, 0.6, "≤ 0.6×"), Pair(cli, oras_i, None),
         Pair(cli, "skopeo copy (process)", None), Pair(cli, "curl -o (process)", None),
         Pair(cli, "python -c pass (process)", None)]))

    warm_cache = b.workdir / "runs" / "warm-small" / "cache"

    def warm_setup(wdir: Path) -> None:
        # fill the cache through the counting proxy (not timed), then count from zero
        pub = b.published["wit"]
        argv = [*b.pkgloader, "fetch", pub.ref, "-o", str(wdir / "fill.wasm"), "-q"]
        m = measure(argv, env=b.pkg_env(warm_cache, via_proxy=True), cwd=wdir, logs=wdir / "logs" / "fill", timeout=120)
        if m.failure():
            raise BenchError(f"filling the warm cache failed: {m.failure()}")
        verify_file(wdir / "fill.wasm", pub, "pkgloader (cache fill)")
        assert b.proxy is not None
        if b.proxy.requests == 0:
            raise BenchError("the cache-filling fetch made no request through the counting proxy")
        b.proxy.mark()

    def warm_tools() -> list[Tool]:
        t = b.cli_fetch(b.published["wit"], via_proxy=True, warm_cache=warm_cache)
        inner = t.check

        def check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            inner(ctx, m)
            return {"http_requests_so_far": b.proxy.requests if b.proxy else None}

        t.check = check
        return [t, b.floor()]

    def zero_requests(r: WorkloadResult) -> tuple[str, str, bool]:
        n = b.proxy.requests if b.proxy else -1
        paths = ", ".join(b.proxy.paths[:3]) if b.proxy and b.proxy.paths else ""
        return f"{n} request(s) in all warm runs" + (f" ({paths})" if paths else ""), "0", n == 0

    out.append(Workload(
        "warm-small", "warm fetch of a cached exact version, whole process", ("wit",), warm_tools,
        [Pair(cli, "python -c pass (process)", 3.5, "≤ 3.5×")],
        [Check("HTTP requests, warm fetch", zero_requests)], setup=warm_setup))

    # -- many packages cold in one call -------------------------------------------------------
    lib_i = "pkgloader library (in-process)"

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
                b.oras_pull(pubs)]

    out.append(Workload(
        "multi-cold", f"{s.multi} packages cold in one call (oras-py: {s.multi} sequential pulls in one process)",
        ("multi",), multi_tools,
        [Pair(cli, oras_p, 0.25, "≤ 0.25×"), Pair(lib_i, oras_i, 0.25, "≤ 0.25×")]))

    # -- a paginated tag list -------------------------------------------------------------------
    pages = math.ceil(s.tags / s.page_size)

    def tag_tools() -> list[Tool]:
        assert b.proxy is not None
        proxy = b.proxy

        def before(ctx: RunCtx) -> None:
            proxy.mark()

        def cli_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return ([*b.pkgloader, "versions", "test:many", "--all", "--json"],
                    b.pkg_env(ctx.rdir / "cache", via_proxy=True))

        def cli_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            try:
                versions = len(json.loads(m.stdout)["versions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BenchError(f"pkgloader versions --json printed no version list ({exc}): {m.stdout[:200]!r}") from None
            return {"versions": versions, "pages": proxy.tag_pages}

        def lib_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", PKG_VERSIONS, "test:many"], b.pkg_env(ctx.rdir / "cache", via_proxy=True)

        def inproc_check(ctx: RunCtx, m: Measurement) -> dict[str, Any]:
            data = bench_line(m)
            return {"in-process": data["seconds"], "import": data["import"], "call": data["call"],
                    "versions": data["versions"], "pages": proxy.tag_pages}

        def oras_cmd(ctx: RunCtx) -> tuple[list[str], dict[str, str]]:
            return [b.python, "-c", ORAS_TAGS, f"{proxy.host}/test/many"], b.env

        return [Tool("pkgloader", "pkgloader CLI", "pkgloader", cli_cmd, cli_check, before=before),
                Tool("library", "pkgloader library", "pkgloader", lib_cmd, inproc_check, modes=("in-process", "process"),
                     before=before),
                Tool("oras", "oras-py", "peer", oras_cmd, inproc_check, modes=("process", "in-process"), before=before)]

    def listed(r: WorkloadResult) -> tuple[str, str, bool]:
        bad = []
        for s_ in r.series.values():
            got = {(e.get("versions"), e.get("pages")) for e in s_.extras}
            if got != {(s.tags, pages)}:
                bad.append(f"{s_.name}: {sorted(got, key=str)}")
        measured = "; ".join(bad) if bad else f"every run: {s.tags} versions over {pages} pages"
        return measured, f"{s.tags} versions, {pages} pages", not bad

    out.append(Workload(
        "tags-paged", f"{s.tags} tags over {pages} pages of {s.page_size} (paging proxy)", ("tags",), tag_tools,
        [Pair(cli, oras_p, 1.0, "≤ 1.0×"), Pair(lib_i, oras_i, 1.0, "≤ 1.0×")],
        [Check("all versions listed", listed)]))

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


HEADERS = ("workload", "series", "median", "min–max", "MiB/s", "peak RSS", "pkgloader/peer", "target", "result")


def table_rows(results: list[WorkloadResult]) -> list[tuple[str, ...]]:
    """One row per series (ratio and target on the peer's row) and one per check; a check
    row has "check: NAME" in the series column and its measured value in the median column."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        w = r.workload
        if not r.ok:
            rows.append((w.name, "FAILED TO RUN", "", "", "", "", "", "", "ERROR"))
            continue
        pair_of: dict[str, dict[str, Any]] = {}
        for p in r.pairs:
            pair_of.setdefault(p["peer"], p)
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
            rows.append((w.name if first else "", s.name, fmt_seconds(s.median),
                         f"{fmt_seconds(min(s.samples))}–{fmt_seconds(max(s.samples))}", mibs, rss, ratio, target, result))
            first = False
        for c in r.checks:
            rows.append(("", f"check: {c['name']}", c["measured"], "", "", "", "", c["target"],
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
            out.append(f"{head}  {r[2]}   target {r[7]}   {r[8]}")
        else:
            out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def render_markdown(rows: list[tuple[str, ...]], meta: dict[str, Any], results: list[WorkloadResult]) -> str:
    esc = [tuple(c.replace("|", "\\|") for c in r) for r in rows]
    lines = [
        "# pkgloader benchmark",
        "",
        f"{meta['date']} · pkgloader {meta['pkgloader']} ({meta['git']}) · oras-py {meta['oras']} · Python "
        f"{meta['python']} · {meta['cpus']} CPUs (load {meta['load_average_start'][0]:.1f}) · runs {meta['runs']}, "
        f"warm-up {meta['warmup']}"
        + (" · quick" if meta["quick"] else "") + (" · **tiny sizes (smoke test)**" if meta["tiny"] else ""),
        "",
        "Times are medians; the ratio is pkgloader's median over the peer's (below 1: pkgloader is faster). "
        "(process) = the whole process; (in-process) = importing the library + the call, timed inside it. "
        f"Peak RSS is per process (floor: {meta['rss_floor_kib'] / 1024:.0f} MiB, the measuring helper).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    lines.append("")
    for r in results:
        lines.append(f"- **{r.workload.name}**: {r.workload.title}" + (f" — **failed**: `{r.error}`" if r.error else ""))
    return "\n".join(lines) + "\n"


def _version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def metadata(args: argparse.Namespace, sizes: Sizes, bench: Bench) -> dict[str, Any]:
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
    floor = measure(["true"], env=bench.env or os.environ, cwd=bench.workdir, logs=bench.workdir / "floor", timeout=30)
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
        "sizes": {"wit_bytes": sizes.wit_bytes, "components": sizes.components, "multi": sizes.multi,
                  "tags": sizes.tags, "page_size": sizes.page_size, "warg_records": sizes.warg_records},
        "published_wit_bytes": bench.published["wit"].size if "wit" in bench.published else None,
        "setup_seconds": bench.setup_seconds,
        "pkgloader_command": bench.pkgloader,
        "rss_floor_kib": floor.maxrss_kib,
        "load_average_start": bench.load_start,
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = TINY if args.tiny else FULL
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else REPO / "bench-results" / f"bench-{stamp}.json"
    md_path = Path(args.markdown) if args.markdown else json_path.with_suffix(".md")

    workdir = Path(tempfile.mkdtemp(prefix="pkgloader-bench-"))
    bench = Bench(args, sizes, workdir)
    workloads = build_workloads(bench)
    names = [w.name for w in workloads]
    if args.quick:
        workloads = [w for w in workloads if w.name != "fetch-1gib"]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"bench.py: error: unknown workload(s) {', '.join(unknown)}; choose from {', '.join(names)}", file=sys.stderr)
            return 2
        workloads = [w for w in workloads if w.name in wanted]
        if not workloads:
            shutil.rmtree(workdir, ignore_errors=True)
            print("bench.py: error: nothing to run (fetch-1gib is skipped by --quick)", file=sys.stderr)
            return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    results: list[WorkloadResult] = []
    try:
        needs = {n for w in workloads for n in w.needs}
        print(f"pkgloader bench: {len(workloads)} workload(s), runs={args.runs}, warm-up={args.warmup}"
              + (" (tiny sizes)" if args.tiny else ""), file=sys.stderr)
        if bench.load_start[0] > (os.cpu_count() or 1) * 0.5:
            print(f"  warning: load average {bench.load_start[0]:.1f} on {os.cpu_count()} CPUs; "
                  "other work on this machine will add noise", file=sys.stderr)
        setup_error = None
        try:
            t = time.perf_counter()
            bench.start(needs)
            if needs:
                print(f"  registry {bench.registry.host if bench.registry else '?'} seeded with "  # noqa: E501
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
        meta = metadata(args, sizes, bench)
    except KeyboardInterrupt:
        print("\nbench.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bench.stop()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = table_rows(results)
    print()
    print(render_text(rows))
    failed = [r.workload.name for r in results if not r.ok]
    missed = sorted({r.workload.name for r in results for x in r.pairs + r.checks if x["ok"] is False})
    report = {"meta": meta, "workloads": [r.to_json() for r in results],
              "summary": {"failed": failed, "missed": missed,
                          "completed": [r.workload.name for r in results if r.ok]}}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(rows, meta, results))
    print(f"\nreport: {json_path}\ntable:  {md_path}")
    if missed:
        print(f"targets missed in: {', '.join(missed)}")
    if failed:
        print(f"workloads that failed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

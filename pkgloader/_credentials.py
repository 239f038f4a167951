"""Registry credentials: where they come from. A pure lookup; no HTTP.

``find_credentials(config, registry, host)`` answers "which credentials do we present to the
OCI registry at ``host`` (serving the logical registry ``registry``)?". The first source that
has an answer wins:

1. env, static bearer token: ``PKGLOADER_REGISTRY_<HOST>_AUTH_BEARER``, then wasm-pkg-client's
   ``WKG_REGISTRY_<HOST>_AUTH_BEARER``;
2. env, basic: ``PKGLOADER_REGISTRY_<HOST>_USERNAME`` and ``PKGLOADER_REGISTRY_<HOST>_PASSWORD``
   (both or neither);
3. config: ``auth`` under ``[registry."NAME".oci]``;
4. docker ``config.json`` (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``), then
   the containers ``auth.json`` of podman/skopeo (``$REGISTRY_AUTH_FILE``, else
   ``$XDG_RUNTIME_DIR/containers/auth.json`` and ``$XDG_CONFIG_HOME/containers/auth.json``).
   In each file: ``credHelpers[host]``, then ``credsStore`` (both run
   ``docker-credential-<helper> get``), then ``auths``.

In 1 and 2, ``<HOST>`` is first the OCI host, then the registry name when it differs. It is
derived exactly as wasm-pkg-client does (``registry_auth_env_var`` in
``crates/wasm-pkg-client/src/oci/mod.rs``): every character that is not an ASCII letter or
digit becomes ``_`` and the result is upper-cased, so ``127.0.0.1:5000`` -> ``127_0_0_1_5000``.
Empty variables count as unset (as in wasm-pkg-client).

The docker config is a best-effort source, like in wasm-pkg-client and oras-py: a credential
helper that is missing, fails, hangs past :data:`HELPER_TIMEOUT` or answers nonsense is logged
as a warning and the lookup goes on (a helper runs in a process group of its own; a hung one is
killed with every process it started) (anonymous access may still work; if it does not, the auth
error names what was tried). A config file that is not valid JSON is a :class:`ConfigError`.

Parsed docker config files (re-read when they change) and helper answers are cached per
process, so fetching 50 packages from one host runs a helper at most once per server URL.
Secrets never appear in a ``repr()``, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from ._frozen import Frozen, init_field
from ._lazyre import LazyPattern
from ._json import load_json
from ._config import SECRET_MASK, Config
from ._errors import ConfigError
from ._log import get_logger

__all__ = ["Credentials", "find_credentials", "env_host_key", "clear_cache", "HELPER_TIMEOUT"]

log = get_logger()

#: Seconds a ``docker-credential-*`` helper may take to answer (tests lower it).
HELPER_TIMEOUT = 10.0

KINDS = ("basic", "bearer", "identity-token")

#: The key docker uses for Docker Hub, in ``auths``, ``credHelpers`` and for helpers.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")

#: A helper's Username meaning "Secret is an identity (refresh) token".
TOKEN_USERNAME = "<token>"

_HELPER_NAME_RE = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Credentials(Frozen):
    """What to present to a registry, and where it came from (for messages)."""

    __fields__ = ("kind", "username", "secret", "source")
    kind: str  # "basic" | "bearer" | "identity-token"
    username: str | None
    secret: str  # password, bearer token, or identity (refresh) token
    source: str  # e.g. "env PKGLOADER_REGISTRY_GHCR_IO_PASSWORD"

    def __init__(self, kind: str, username: str | None, secret: str, source: str) -> None:
        init_field(self, "kind", kind)
        init_field(self, "username", username)
        init_field(self, "secret", secret)
        init_field(self, "source", source)
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown credentials kind {self.kind!r} (expected one of {', '.join(KINDS)})")

    def __repr__(self) -> str:  # never show the secret
        return (f"Credentials(kind={self.kind!r}, username={self.username!r}, "
                f"secret='{SECRET_MASK}', source={self.source!r})")

    def authorization(self) -> str | None:
        """The ``Authorization`` header value, or None for an identity token (which is
        exchanged at the token endpoint as a ``refresh_token``)."""
        if self.kind == "basic":
            raw = f"{self.username or ''}:{self.secret}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        if self.kind == "bearer":
            return f"Bearer {self.secret}"
        return None


def env_host_key(name: str) -> str:
    """``<HOST>`` in ``WKG_REGISTRY_<HOST>_AUTH_BEARER``: wasm-pkg-client's rule, exactly.

    Every character that is not ASCII alphanumeric becomes ``_`` (one per character, no
    collapsing), then ASCII upper-case: ``ghcr.io`` -> ``GHCR_IO``,
    ``localhost:1234`` -> ``LOCALHOST_1234``, ``foo.bar/baz`` -> ``FOO_BAR_BAZ``.
    """
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in name).upper()


def find_credentials(
    config: Config,
    registry: str,
    host: str,
    *,
    env: Mapping[str, str] | None = None,
) -> Credentials | None:
    """The credentials for the OCI registry at ``host`` serving the logical ``registry``,
    or None (anonymous). ``env`` replaces ``os.environ`` for every lookup (variables,
    ``DOCKER_CONFIG``, ``HOME``, ``PATH`` and the helpers' environment).

    Raises :class:`ConfigError` for half-set env credentials and malformed config files.
    """
    env = os.environ if env is None else env
    names = [host] if registry == host else [host, registry]
    return (
        _env_bearer(names, env)
        or _env_basic(names, env)
        or _config_auth(config, registry)
        or _docker_credentials(host, env)
    )


def clear_cache() -> None:
    """Forget parsed docker config files and helper answers (for tests and long-lived
    processes after ``docker login``)."""
    with _cache_lock:
        _file_cache.clear()
        _helper_cache.clear()
        _helper_locks.clear()
        _warned.clear()
        _hung_helpers.clear()


# ---------------------------------------------------------------------------------------
# 1-2: environment


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


def _env_bearer(names: list[str], env: Mapping[str, str]) -> Credentials | None:
    for name in names:
        key = env_host_key(name)
        for prefix in ("PKGLOADER_REGISTRY_", "WKG_REGISTRY_"):
            var = f"{prefix}{key}_AUTH_BEARER"
            token = _env(env, var)
            if token is not None:
                log.debug("credentials for %s: bearer token from env %s", name, var)
                return Credentials("bearer", None, token, f"env {var}")
    return None


def _env_basic(names: list[str], env: Mapping[str, str]) -> Credentials | None:
    for name in names:
        key = env_host_key(name)
        user_var = f"PKGLOADER_REGISTRY_{key}_USERNAME"
        pass_var = f"PKGLOADER_REGISTRY_{key}_PASSWORD"
        username, password = _env(env, user_var), _env(env, pass_var)
        if username is None and password is None:
            continue
        if username is None or password is None:
            have, missing = (user_var, pass_var) if password is None else (pass_var, user_var)
            raise ConfigError(
                f"{have} is set but {missing} is not (credentials for {name})",
                details=[f"{missing} is unset or empty"],
                hint=f"set both {user_var} and {pass_var}, or neither",
            )
        log.debug("credentials for %s: username and password from env %s", name, pass_var)
        return Credentials("basic", username, password, f"env {pass_var}")
    return None


# ---------------------------------------------------------------------------------------
# 3: config


def _config_auth(config: Config, registry: str) -> Credentials | None:
    rc = config.registry_config(registry)
    setting = rc.backends.get("oci", {}).get("auth")
    if setting is None:
        return None
    auth = rc.oci().auth
    if auth is None:  # pragma: no cover - a present setting always decodes
        return None
    source = f'config registry."{registry}".oci.auth ({setting.origin})'
    log.debug("credentials for %s: %s", registry, source)
    return Credentials("basic", auth.username, auth.password, source)


# ---------------------------------------------------------------------------------------
# 4: docker config.json and containers auth.json


class _AuthFile(Frozen):
    __fields__ = ("path", "label", "auths", "cred_helpers", "creds_store")
    path: Path
    label: str  # "docker config" | "containers auth file"
    auths: dict[str, dict[str, Any]]
    cred_helpers: dict[str, str]
    creds_store: str | None

    def __init__(self, path: Path, label: str, auths: dict[str, dict[str, Any]], cred_helpers: dict[str, str], creds_store: str | None) -> None:
        init_field(self, "path", path)
        init_field(self, "label", label)
        init_field(self, "auths", auths)
        init_field(self, "cred_helpers", cred_helpers)
        init_field(self, "creds_store", creds_store)


_cache_lock = threading.Lock()
_file_cache: dict[Path, tuple[tuple[int, int, int], _AuthFile]] = {}
# (helper executable, server URL) -> (Username, Secret) | None
_helper_cache: dict[tuple[str, str], tuple[str, str] | None] = {}
_helper_locks: dict[tuple[str, str], threading.Lock] = {}
_warned: set[tuple[str, ...]] = set()
_hung_helpers: set[str] = set()  # executables that timed out: not asked again


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _auth_files(env: Mapping[str, str]) -> list[tuple[Path, str]]:
    docker_dir = env.get("DOCKER_CONFIG")
    docker = Path(docker_dir) if docker_dir else _home(env) / ".docker"
    files = [(docker / "config.json", "docker config")]
    explicit = env.get("REGISTRY_AUTH_FILE")
    if explicit:
        files.append((Path(explicit).expanduser(), "containers auth file"))
    else:
        runtime = env.get("XDG_RUNTIME_DIR")
        if runtime:
            files.append((Path(runtime) / "containers" / "auth.json", "containers auth file"))
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else _home(env) / ".config"
        files.append((base / "containers" / "auth.json", "containers auth file"))
    return files


def _docker_credentials(host: str, env: Mapping[str, str]) -> Credentials | None:
    seen: set[Path] = set()
    for path, label in _auth_files(env):
        if path in seen:
            continue
        seen.add(path)
        parsed = _load_auth_file(path, label)
        if parsed is None:
            continue
        creds = _from_auth_file(parsed, host, env)
        if creds is not None:
            log.debug("credentials for %s: %s", host, creds.source)
            return creds
    return None


def _load_auth_file(path: Path, label: str) -> _AuthFile | None:
    """The parsed file, or None when it does not exist. Cached until the file changes."""
    try:
        st = path.stat()
    except OSError:
        return None
    sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _file_cache.get(path)
        if hit is not None and hit[0] == sig:
            return hit[1]
    parsed = _parse_auth_file(path, label)
    with _cache_lock:
        _file_cache[path] = (sig, parsed)
    return parsed


def _parse_auth_file(path: Path, label: str) -> _AuthFile:
    def bad(problem: str, *details: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            f"{label} {path} {problem}",
            details=[f"file: {path}", *details],
            hint=hint or f"fix or remove {path} (it is read for registry credentials)",
        )

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    except OSError as exc:
        raise bad("cannot be read", f"{type(exc).__name__}: {exc.strerror or exc}") from None
    if not text.strip():
        return _AuthFile(path, label, {}, {}, None)
    try:
        data: Any = load_json(text)
    except json.JSONDecodeError as exc:
        # exc.msg and the position never contain the file's text (which may hold secrets)
        raise bad("is not valid JSON", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # nested too deeply: the message is ours, no text of the file
        raise bad("is not valid JSON", str(exc)) from None
    if not isinstance(data, dict):
        raise bad("is not a JSON object")

    auths_raw = data.get("auths")
    auths_raw = {} if auths_raw is None else auths_raw
    if not isinstance(auths_raw, dict):
        raise bad('has an "auths" that is not an object')
    auths: dict[str, dict[str, Any]] = {}
    for key, entry in auths_raw.items():
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise bad(f'has an auths entry "{key}" that is not an object')
        for field_name in ("auth", "username", "password", "identitytoken", "registrytoken"):
            if entry.get(field_name) is not None and not isinstance(entry[field_name], str):
                raise bad(f'has a non-string "{field_name}" in auths "{key}"')
        auths[key] = entry

    helpers_raw = data.get("credHelpers")
    helpers_raw = {} if helpers_raw is None else helpers_raw
    if not isinstance(helpers_raw, dict):
        raise bad('has a "credHelpers" that is not an object')
    cred_helpers: dict[str, str] = {}
    for key, name in helpers_raw.items():
        if not isinstance(name, str) or not _HELPER_NAME_RE.match(name):
            raise bad(f'names an invalid credential helper for "{key}" in credHelpers',
                      "a helper name is the part after docker-credential-, e.g. ecr-login")
        cred_helpers[key] = name

    store = data.get("credsStore")
    if store == "":
        store = None  # docker writes "credsStore": "" after a credsStore is removed
    if store is not None and (not isinstance(store, str) or not _HELPER_NAME_RE.match(store)):
        raise bad("names an invalid credential helper in credsStore",
                  "a helper name is the part after docker-credential-, e.g. desktop")
    return _AuthFile(path, label, auths, cred_helpers, store)


def _is_docker_hub(host: str) -> bool:
    return host.lower() in DOCKER_HUB_HOSTS


def _key_host(key: str) -> str | None:
    """The host a config key stands for, the way docker reads it (``ConvertToHostname``):
    ``https://ghcr.io/v1/`` -> ``ghcr.io``. Scheme-less keys with a path
    (``quay.io/org``, podman's repository-scoped entries) stand for no host."""
    lowered = key.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            return lowered[len(scheme):].split("/", 1)[0]
    return None if "/" in lowered else lowered


def _matching_keys(keys: list[str], host: str) -> list[str]:
    """Keys of ``auths``/``credHelpers`` that apply to ``host``, best first: the key docker
    itself looks up (the host, or ``https://index.docker.io/v1/`` for Docker Hub), then any
    key naming the same host (``https://host``, ``http://host``, ``https://host/v1/``...)."""
    hub = _is_docker_hub(host)
    primary = DOCKER_HUB_KEY if hub else host
    hosts = set(DOCKER_HUB_HOSTS) if hub else {host.lower()}
    out = [k for k in keys if k == primary]
    out += [k for k in keys if k not in out and _key_host(k) in hosts]
    return out


def _from_auth_file(f: _AuthFile, host: str, env: Mapping[str, str]) -> Credentials | None:
    where = f"{f.label} {f.path}"
    for key in _matching_keys(list(f.cred_helpers), host)[:1]:
        helper = f.cred_helpers[key]
        creds = _ask_helper(helper, "credHelpers", host, env, where)
        if creds is not None:
            return creds
    if f.creds_store:
        creds = _ask_helper(f.creds_store, "credsStore", host, env, where)
        if creds is not None:
            return creds
    for key in _matching_keys(list(f.auths), host):
        creds = _from_auths_entry(f, key, f'{where} (auths "{key}")')
        if creds is not None:
            return creds
    return None


def _from_auths_entry(f: _AuthFile, key: str, source: str) -> Credentials | None:
    entry = f.auths[key]
    username: str | None = entry.get("username") or None
    password: str | None = entry.get("password") or None
    auth = entry.get("auth")
    if auth:
        try:
            raw = base64.b64decode(auth + "=" * (-len(auth) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ConfigError(
                f'{f.label} {f.path} has an "auth" in auths "{key}" that is not base64 of "user:password"',
                details=[f"file: {f.path}"],
                hint=f"run docker login {_key_host(key) or key} again, or fix the entry",
            ) from None
        if ":" not in raw:
            raise ConfigError(
                f'{f.label} {f.path} has an "auth" in auths "{key}" without ":" between user and password',
                details=[f"file: {f.path}"],
                hint=f"run docker login {_key_host(key) or key} again, or fix the entry",
            )
        user, _, pw = raw.partition(":")
        username, password = user or username, pw or password
    if entry.get("registrytoken"):
        return Credentials("bearer", None, entry["registrytoken"], source)
    if entry.get("identitytoken"):
        return Credentials("identity-token", username, entry["identitytoken"], source)
    if username and password:
        return Credentials("basic", username, password, source)
    return None  # an empty entry: docker writes these next to a credsStore


# --- credential helpers ---------------------------------------------------------------


def _warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    with _cache_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def _server_urls(host: str) -> list[str]:
    """What to ask a helper for: the key docker uses (the host, or the Docker Hub URL),
    then ``https://host``, which is what some logins store (wasm-pkg-client asks both)."""
    if _is_docker_hub(host):
        return [DOCKER_HUB_KEY]
    return [host, f"https://{host}"]


def _ask_helper(helper: str, setting: str, host: str, env: Mapping[str, str], where: str) -> Credentials | None:
    """Ask ``docker-credential-<helper>`` (named by ``setting`` in the file ``where``)."""
    source = f"{where} ({setting}: {helper})"
    name = f"docker-credential-{helper}"
    path_var = env.get("PATH", os.defpath)
    import shutil

    exe = shutil.which(name, path=path_var)
    if exe is None:
        _warn_once(("missing", name, path_var),
                   "%s names credential helper %s in %s, but it is not on PATH; continuing without it",
                   where, name, setting)
        return None
    for url in _server_urls(host):
        answer = _helper_get(exe, name, url, env, source)
        if answer is None:
            continue
        username, secret = answer
        if username == TOKEN_USERNAME:
            return Credentials("identity-token", None, secret, source)
        return Credentials("basic", username, secret, source)
    return None


def _helper_get(exe: str, name: str, url: str, env: Mapping[str, str],
                source: str) -> tuple[str, str] | None:
    key = (exe, url)
    with _cache_lock:
        if key in _helper_cache:
            return _helper_cache[key]
        lock = _helper_locks.setdefault(key, threading.Lock())
    with lock:  # one helper process per (helper, URL), even with concurrent lookups
        with _cache_lock:
            if key in _helper_cache:
                return _helper_cache[key]
        answer = _run_helper(exe, name, url, env, source)
        with _cache_lock:
            _helper_cache[key] = answer
        return answer


def _kill_helper(proc: Any, posix: bool) -> None:
    """Kill a hung helper and its process group: children it started (a shell script's
    ``sleep``, an agent it waits on) die with it instead of running on after the timeout.
    A child that left the group on purpose (``setsid``: a daemon) is not ours to kill."""
    if posix:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
    try:
        proc.kill()
    except OSError:  # pragma: no cover - already reaped
        pass
    proc.wait()


def _run_helper(exe: str, name: str, url: str, env: Mapping[str, str],
                source: str) -> tuple[str, str] | None:
    with _cache_lock:
        if exe in _hung_helpers:
            return None
    import subprocess  # only when a credential helper is configured

    timeout = HELPER_TIMEOUT
    posix = os.name == "posix"
    try:
        proc = subprocess.Popen(
            [exe, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            # its own process group, so a hung helper is killed with everything it started
            start_new_session=posix,
        )
    except OSError as exc:
        _warn_once(("unrunnable", exe), "cannot run credential helper %s (%s): %s; continuing without it",
                   exe, source, exc.strerror or type(exc).__name__)
        return None
    try:
        out, err = proc.communicate(url.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_helper(proc, posix)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        with _cache_lock:
            _hung_helpers.add(exe)
        log.warning("credential helper %s did not answer within %g s for %s (%s); continuing without it",
                    name, timeout, url, source)
        return None
    except BaseException:  # Ctrl-C (the helper's group does not get the terminal's SIGINT)
        _kill_helper(proc, posix)
        raise
    if proc.returncode != 0:
        message = (out.decode("utf-8", "replace").strip() or err.decode("utf-8", "replace").strip())
        if "credentials not found" in message.lower():
            return None
        first = message.splitlines()[0][:200] if message else "no output"
        if first.lstrip().startswith(("{", "[")):
            first = "output not shown: it may hold the credentials"  # an answer, even if it failed
        log.warning("credential helper %s failed for %s (exit status %s: %s); continuing without it",
                    name, url, proc.returncode, first)
        return None
    # stdout holds the secret: never echo it
    try:
        data: Any = load_json(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        log.warning("credential helper %s answered %s with something that is not JSON; continuing without it",
                    name, url)
        return None
    if not isinstance(data, dict):
        log.warning("credential helper %s answered %s with JSON that is not an object; continuing without it",
                    name, url)
        return None
    username, secret = data.get("Username"), data.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None  # some helpers answer "not found" with empty fields
    if not isinstance(username, str):
        username = ""
    return username, secret

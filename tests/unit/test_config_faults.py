"""Config files that are malformed, hostile or not files at all (issue 13, items 1, 2 and 7).

* A secret in a malformed config is never printed: not the line tomllib points at, not a value
  of the wrong type, not in ``--json`` details, not with ``-v``/``-vv`` (tracebacks and logs).
* Nesting too deep for tomllib (it recurses) is an invalid config / lock file, never a
  ``RecursionError``; the same for ``pyproject.toml``.
* A config path that is a directory, a FIFO or a device is named as such, never as missing;
  nothing blocks on a FIFO or reads ``/dev/zero`` for ever.
* A hung credential helper is killed with the processes it started.

Every case asserts the exit code and the whole message.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pkgloader import _credentials
from pkgloader._config import Config, global_config_path, secret_lines
from pkgloader._credentials import clear_cache, find_credentials
from pkgloader._errors import ConfigError, LocalIOError
from pkgloader._lockfile import LockFile

SECRET = "Zq7s3cr3tCANARY"  # in every secret below; never printed
OCI = '[registry."r.example".oci]\n'
WARG = '[registry."r.example".warg]\n'
PK = "[pkgloader]\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_forms() -> list[str]:
    """The secret as it could leak: itself, inside base64 "user:secret", or a fragment of it."""
    encoded = b64("alice:" + SECRET)
    return [SECRET, SECRET[:8], SECRET[-8:], encoded, encoded.rstrip("="), b64("alice" + SECRET).rstrip("=")]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in secret_forms():
            assert form not in text, f"{form!r} leaked in {text!r}"


# ---------------------------------------------------------------------------------------
# item 1: malformed auth (and other secret) forms: the whole message, and no secret anywhere

AUTH_CASES: list[tuple[str, str, list[str]]] = [
    ('unterminated-table', OCI + f'auth = {{ username = "alice", password = "{SECRET}"\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Unclosed inline table",
      '  file: {file}:2 (column 58)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('array', OCI + f'auth = ["{SECRET}"]\n',
     ['error[invalid-config]: registry."r.example".oci.auth: expected a table { username, password } or base64 of "user:pass", got an array',
      '  in {file}:2 (flag layer)']),
    ('extra-key', OCI + f'auth = {{ username = "alice", password = "{SECRET}", extra = 1 }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth.extra: unknown auth key \'extra\'',
      '  in {file}:2 (flag layer)',
      '  hint: known keys: username, password']),
    ('misspelt-password', OCI + f'auth = {{ username = "alice", passwd = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth.passwd: unknown auth key \'passwd\'',
      '  in {file}:2 (flag layer)',
      "  hint: did you mean 'password'?"]),
    ('misspelt-username', OCI + f'auth = {{ user = "alice", password = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth.user: unknown auth key \'user\'',
      '  in {file}:2 (flag layer)',
      "  hint: did you mean 'username'?"]),
    ('username-not-string', OCI + f'auth = {{ username = 1, password = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth table needs a string \'username\'',
      '  in {file}:2 (flag layer)',
      '  hint: write auth = { username = "...", password = "..." }']),
    ('password-array', OCI + f'auth = {{ username = "alice", password = ["{SECRET}"] }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth table needs a string \'password\'',
      '  in {file}:2 (flag layer)',
      '  hint: write auth = { username = "...", password = "..." }']),
    ('password-table', OCI + f'auth = {{ username = "alice", password = {{ v = "{SECRET}" }} }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth table needs a string \'password\'',
      '  in {file}:2 (flag layer)',
      '  hint: write auth = { username = "...", password = "..." }']),
    ('no-username', OCI + f'auth = {{ password = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth table needs a string \'username\'',
      '  in {file}:2 (flag layer)',
      '  hint: write auth = { username = "...", password = "..." }']),
    ('base64-without-colon', OCI + f'auth = "{b64("alice" + SECRET)}"\n',
     ['error[invalid-config]: registry."r.example".oci.auth: decoded auth has no \':\' between user and password',
      '  in {file}:2 (flag layer)',
      '  hint: encode "user:pass"']),
    ('bad-base64', OCI + f'auth = "{b64("alice:" + SECRET)}!"\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth is not valid base64',
      '  in {file}:2 (flag layer)',
      '  hint: write base64 of "user:pass", or a { username, password } table']),
    ('plain-password', OCI + f'auth = "{SECRET}"\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth is not valid base64',
      '  in {file}:2 (flag layer)',
      '  hint: write base64 of "user:pass", or a { username, password } table']),
    ('user-colon-password-unencoded', OCI + f'auth = "alice:{SECRET}"\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth is not valid base64',
      '  in {file}:2 (flag layer)',
      '  hint: write base64 of "user:pass", or a { username, password } table']),
    ('integer', OCI + "auth = 4711\n",
     ['error[invalid-config]: registry."r.example".oci.auth: expected a table { username, password } or base64 of "user:pass", got an integer',
      '  in {file}:2 (flag layer)']),
    ('array-of-base64', OCI + f'auth = ["{b64("alice:" + SECRET)}"]\n',
     ['error[invalid-config]: registry."r.example".oci.auth: expected a table { username, password } or base64 of "user:pass", got an array',
      '  in {file}:2 (flag layer)']),
    ('array-of-inline-tables', OCI + f'auth = [{{ username = "alice", password = "{SECRET}" }}]\n',
     ['error[invalid-config]: registry."r.example".oci.auth: expected a table { username, password } or base64 of "user:pass", got an array',
      '  in {file}:2 (flag layer)']),
    ('array-of-tables', OCI + f'[[registry."r.example".oci.auth]]\nusername = "alice"\npassword = "{SECRET}"\n',
     ['error[invalid-config]: registry."r.example".oci.auth: expected a table { username, password } or base64 of "user:pass", got an array',
      '  in {file}:2 (flag layer)']),
    ('table-with-extra-key', OCI + f'[registry."r.example".oci.auth]\nusername = "alice"\npassword = "{SECRET}"\nextra = "x"\n',
     ['error[invalid-config]: registry."r.example".oci.auth.extra: unknown auth key \'extra\'',
      '  in {file}:5 (flag layer)',
      '  hint: known keys: username, password']),
    ('nested-table', OCI + f'[registry."r.example".oci.auth.inner]\npassword = "{SECRET}"\n',
     ['error[invalid-config]: registry."r.example".oci.auth.inner: unknown auth key \'inner\'',
      '  in {file}:2 (flag layer)',
      '  hint: known keys: username, password']),
    ('dotted-password-array', OCI + f'auth.username = "alice"\nauth.password = ["{SECRET}"]\n',
     ['error[invalid-config]: registry."r.example".oci.auth: auth table needs a string \'password\'',
      '  in {file}:2 (flag layer)',
      '  hint: write auth = { username = "...", password = "..." }']),
    ('declared-twice', OCI + f'auth = {{ username = "alice", password = "{SECRET}" }}\nauth = {{ username = "alice", password = "{SECRET}" }}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Cannot overwrite a value",
      '  file: {file}:3 (column 60)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('junk-after-table', OCI + f'auth = {{ username = "alice", password = "{SECRET}" }} junk\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Expected newline or end of document after a statement",
      '  file: {file}:2 (column 61)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('unterminated-string', OCI + f'auth = {{ username = "alice", password = "{SECRET}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Illegal character '\\n'",
      '  file: {file}:2 (column 57)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('unterminated-multiline-string', OCI + f'auth = {{ username = "alice", password = """{SECRET}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Unterminated string (at end of document)",
      '  file: {file}',
      '  hint: fix the TOML syntax at the position shown']),
    ('unterminated-literal-string', OCI + f"auth = {{ username = \"alice\", password = '{SECRET}\n",
     ['error[invalid-config]: config file \'{file}\' is not valid TOML: Expected "\'" (at end of document)',
      '  file: {file}',
      '  hint: fix the TOML syntax at the position shown']),
    ('missing-comma', OCI + f'auth = {{ username = "alice" password = "{SECRET}" }}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Unclosed inline table",
      '  file: {file}:2 (column 29)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('trailing-comma', OCI + f'auth = {{ username = "alice", password = "{SECRET}", }}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Invalid initial character for a key part",
      '  file: {file}:2 (column 60)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('unterminated-base64', OCI + f'auth = "{b64("alice:" + SECRET)}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Illegal character '\\n'",
      '  file: {file}:2 (column 37)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('unterminated-array', OCI + f'auth = [\n  "{SECRET}",\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Invalid value (at end of document)",
      '  file: {file}',
      '  hint: fix the TOML syntax at the position shown']),
    ('multiline-string-with-key-like-line', OCI + f'auth = """\nabc = def\n{SECRET}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Unterminated string (at end of document)",
      '  file: {file}',
      '  hint: fix the TOML syntax at the position shown']),
    ('control-character', OCI + f'auth = {{ username = "alice", password = "{SECRET}\x01" }}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Illegal character",
      '  file: {file}:2 (column 57)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('password-outside-auth', OCI + f'password = "{SECRET}"\n',
     ['error[invalid-config]: registry."r.example".oci.password: unknown oci key \'password\'',
      '  in {file}:2 (flag layer)',
      '  hint: known keys: auth, protocol, accept_invalid_certificates, extra_root_certificates, client_certificate, client_key, mirrors, mirror_fallback']),
    ('auth-outside-backend', f'[registry."r.example"]\nauth = {{ username = "alice", password = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".auth: \'auth\' must be inside a backend table',
      '  in {file}:2 (flag layer)',
      '  hint: move it under [registry."r.example".oci]']),
    ('base64-where-the-oci-table-belongs', f'[registry."r.example"]\noci = "{b64("alice:" + SECRET)}"\n',
     ['error[invalid-config]: registry."r.example".oci: expected a table, got a string',
      '  in {file}:2 (flag layer)']),
    ('oci-array-of-tables', f'[[registry."r.example".oci]]\nauth = "{b64("alice:" + SECRET)}"\n',
     ['error[invalid-config]: registry."r.example".oci: expected a table, got an array',
      '  in {file}:1 (flag layer)']),
    ('warg-token-array', WARG + f'auth_token = ["{SECRET}"]\n',
     ['error[invalid-config]: registry."r.example".warg.auth_token: expected a string, got an array',
      '  in {file}:2 (flag layer)']),
    ('warg-token-unterminated', WARG + f'auth_token = "{SECRET}\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Illegal character '\\n'",
      '  file: {file}:2 (column 30)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('warg-token-table', WARG + f'auth_token = {{ t = "{SECRET}" }}\n',
     ['error[invalid-config]: registry."r.example".warg.auth_token: expected a string, got a table',
      '  in {file}:2 (flag layer)']),
    ('warg-signing-key-integer', WARG + "signing_key = 4711\n",
     ['error[invalid-config]: registry."r.example".warg.signing_key: expected a string, got an integer',
      '  in {file}:2 (flag layer)']),
    ('proxy-array', PK + f'proxy = ["http://u:{SECRET}@proxy.example:3128"]\n',
     ['error[invalid-config]: pkgloader.proxy: expected a proxy URL such as http://proxy.example.com:3128, got an array',
      '  in {file}:2 (flag layer)']),
    ('proxy-unterminated', PK + f'proxy = "http://u:{SECRET}@proxy.example:3128\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Illegal character '\\n'",
      '  file: {file}:2 (column 53)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
    ('proxy-bad-port', PK + f'https_proxy = "http://u:{SECRET}@proxy.example:port"\n',
     ['error[invalid-config]: invalid proxy setting: flag {file}:2: not a proxy URL (expected http://host:port)',
      '  set by: flag {file}:2',
      '  hint: write http://host:port (credentials, if any, as http://user:password@host:port)']),
    ('proxy-wrong-scheme', PK + f'http_proxy = "ftp://u:{SECRET}@proxy.example:3128"\n',
     ['error[invalid-config]: invalid proxy setting: flag {file}:2: pkgloader speaks to proxies over http:// only, not ftp:// (an http:// proxy still tunnels https:// registries with CONNECT)',
      '  set by: flag {file}:2',
      '  hint: write http://host:port (credentials, if any, as http://user:password@host:port)']),
    ('url-with-credentials-elsewhere', f'default_registry = "http://u:{SECRET}@r.example" junk\n',
     ["error[invalid-config]: config file '{file}' is not valid TOML: Expected newline or end of document after a statement",
      '  file: {file}:1 (column 57)',
      '  (the line is not shown: it holds a secret)',
      '  hint: fix the TOML syntax at the position shown']),
]


def _tolerated(expected: list[str], file: str) -> tuple[str, str] | None:
    """A bad [registry."r.example"] entry is, as in wkg, no error for the file (issue 15): it
    is a warning, and an error (registry-unusable) when the registry is used. Returns (the
    warning on stderr, the error on use) for such a case, None for an error of the file."""
    first = expected[0]
    if not first.startswith('error[invalid-config]: registry."r.example"'):
        return None
    message = first.removeprefix("error[invalid-config]: ")
    where = next(x for x in expected[1:] if x.startswith("  in ")).removeprefix("  in ").replace("{file}", file)
    hint = next((x.removeprefix("  hint: ") for x in expected[1:] if x.startswith("  hint: ")), None)
    warning = (f"warning: {where}: {message}: registry 'r.example' cannot be used until this is fixed; "
               "other registries are unaffected" + (f" (hint: {hint})" if hint else "") + "\n")
    error = (f"error[registry-unusable]: registry 'r.example' cannot be used: its config entry is invalid\n"
             f"  {where}: {message}\n"
             '  hint: fix [registry."r.example"] (pkgloader speaks the oci, local and warg backends), '
             "or map the package to another registry\n")
    return warning, error


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in AUTH_CASES], ids=[n for n, _, _ in AUTH_CASES])
def test_malformed_secrets_are_never_printed(text: str, expected: list[str], tmp_path: Path, run_cli: Any) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    tolerated = _tolerated(expected, str(f))
    if tolerated is not None:
        warning, error = tolerated
        outputs = []
        r = run_cli("config", "show", "--config", f)
        assert (r.code, r.err) == (0, warning)
        outputs += [r.out, r.err]
        for verbose in ("-v", "-vv"):
            r = run_cli("config", "resolve", "test:x", "--registry", "r.example", "--config", f, verbose, "--json")
            assert r.code == 2 and r.err.endswith(error)
            assert r.json()["error"]["code"] == "registry-unusable"  # type: ignore[index]
            outputs += [r.out, r.err]
        r = run_cli("fetch", "test:x@0.2", "--registry", "r.example", "--config", f, "--offline")
        assert (r.code, r.err) == (2, warning + error)
        outputs += [r.out, r.err]
        cfg = Config.load(config_files=[f])
        with pytest.raises(ConfigError) as ei:
            cfg.registry_config("r.example").check_usable()
        outputs += cfg.warnings + [ei.value.render(), repr(ei.value), str(ei.value), json.dumps(ei.value.to_json())]
        assert_no_secret(*outputs)
        return
    message = "\n".join(line.replace("{file}", str(f)) for line in expected)
    r = run_cli("config", "show", "--config", f)
    assert (r.code, r.out, r.err) == (2, "", message + "\n")
    r = run_cli("config", "show", "--config", f, "--json")
    assert (r.code, r.err) == (2, message + "\n")
    error = r.json()["error"]  # type: ignore[index]
    assert error["exit_code"] == 2 and error["code"] == "invalid-config"
    assert "\n".join([f"error[{error['code']}]: {error['message']}", *(f"  {d}" for d in error["details"]),
                      *([f"  hint: {error['hint']}"] if error["hint"] else [])]) == message
    outputs = [r.out]
    for verbose in ("-v", "-vv"):  # tracebacks and debug logs
        r = run_cli("config", "show", "--config", f, verbose, "--json")
        assert r.code == 2 and r.err.endswith(message + "\n")
        outputs += [r.out, r.err]
    r = run_cli("fetch", "wasi:http@0.2", "--config", f, "-vv", "--offline")  # any command
    assert (r.code, r.err.endswith(message + "\n")) == (2, True)
    outputs += [r.out, r.err]
    with pytest.raises(ConfigError) as ei:
        Config.load(config_files=[f])
    outputs += [ei.value.render(), repr(ei.value), str(ei.value), json.dumps(ei.value.to_json())]
    assert_no_secret(*outputs)


def test_at_least_36_malformed_forms_are_probed() -> None:
    assert len(AUTH_CASES) >= 36


def test_a_syntax_error_away_from_secrets_shows_the_line_masked(tmp_path: Path, run_cli: Any) -> None:
    """Other lines are shown with the contents of strings and the words pkgloader does not know
    masked column for column: known keys, punctuation and the caret stay."""
    f = tmp_path / "c.toml"
    f.write_text(OCI + f'auth = {{ username = "alice", password = "{SECRET}" }}\nprotocol = "http" junk\n')
    r = run_cli("config", "show", "--config", f)
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: Expected newline or end of document after a statement",
        f"  file: {f}:3",
        '  protocol = "****" ****',
        "                    ^",
        "  hint: fix the TOML syntax at the position shown",
    ]) + "\n")


def test_a_damaged_key_name_does_not_unmask_its_secret(tmp_path: Path, run_cli: Any) -> None:
    """Found by tests/property/test_config_props.py: an edit destroyed the key's name, so no
    net sees a secret on the line; the masking still hides it."""
    f = tmp_path / "c.toml"
    f.write_text(f'[registry."r.example".ociuth = "{b64("alice:" + SECRET)}"\n')
    r = run_cli("config", "show", "--config", f)
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: Expected ']' at the end of a table declaration",
        f"  file: {f}:1",
        '  [registry."*********".****** = "****************************"',
        "                               ^",
        "  hint: fix the TOML syntax at the position shown",
    ]) + "\n")


def test_wrong_type_of_a_plain_setting_still_quotes_the_value(tmp_path: Path, run_cli: Any) -> None:
    f = tmp_path / "c.toml"
    f.write_text(OCI + 'accept_invalid_certificates = "yes"\n')
    r = run_cli("config", "show", "--config", f)  # a bad registry entry fails that registry only (issue 15)
    assert (r.code, r.err) == (0, f"warning: {f}:2 (flag layer): "
                               'registry."r.example".oci.accept_invalid_certificates: expected true or false, got a string \'yes\': '
                               "registry 'r.example' cannot be used until this is fixed; other registries are unaffected\n")


def test_a_very_long_line_is_shown_around_the_error(tmp_path: Path, run_cli: Any) -> None:
    f = tmp_path / "c.toml"
    f.write_text('default_registry = "' + "a" * 5000 + '" junk\n')
    r = run_cli("config", "show", "--config", f)
    excerpt = "..." + "*" * 114 + '" ****'  # the last 120 characters, masked: the error is near the end
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: Expected newline or end of document after a statement",
        f"  file: {f}:1",
        f"  {excerpt}",
        "  " + " " * excerpt.rindex("****") + "^",
        "  hint: fix the TOML syntax at the position shown",
    ]) + "\n")


@pytest.mark.parametrize("layer", ["env", "global", "project", "pyproject"])
def test_secrets_are_not_printed_from_any_layer(layer: str, tmp_path: Path, run_cli: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    text = OCI + f'auth = {{ username = "alice", password = "{SECRET}"\n'
    if layer == "env":
        f = tmp_path / "env.toml"
        monkeypatch.setenv("PKGLOADER_CONFIG", str(f))
    elif layer == "global":
        f = global_config_path()
    elif layer == "project":
        f = Path.cwd() / "pkgloader.toml"
    else:
        f = Path.cwd() / "pyproject.toml"
        text = "[tool.pkgloader]\n" + text.replace("[registry.", "[tool.pkgloader.registry.")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    line = 3 if layer == "pyproject" else 2
    r = run_cli("config", "show", "--json", "-vv")
    assert r.code == 2
    assert r.err.endswith("\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: Unclosed inline table",
        f"  file: {f}:{line} (column 58)",
        "  (the line is not shown: it holds a secret)",
        "  hint: fix the TOML syntax at the position shown",
    ]) + "\n")
    assert_no_secret(r.out, r.err)


def test_secret_lines_follows_toml_strings_and_containers() -> None:
    text = textwrap.dedent('''\
        [registry."r".oci]
        protocol = "http"   # password = "not a secret: a comment"
        auth = { username = "alice",
          password = "x" }
        note = "auth = 1"
        [registry."r".warg]
        auth_token = """
        multi
        line = 1
        """
        url = "https://warg.example"
        [registry."r".oci.auth]
        username = "bob"
        [pkgloader]
        proxy = [
          "http://u:p@h",
        ]
        no_proxy = "localhost"
        x = "https://user:pw@host/"
        ''')
    assert sorted(secret_lines(text)) == [3, 4, 7, 8, 9, 10, 13, 15, 16, 17, 19]


# ---------------------------------------------------------------------------------------
# item 2 (TOML): nesting deeper than tomllib can recurse

DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"


def test_deeply_nested_config_is_invalid_config(tmp_path: Path, run_cli: Any) -> None:
    f = tmp_path / "deep.toml"
    f.write_text(DEEP)
    r = run_cli("config", "show", "--config", f, "--json")
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: arrays or inline tables nested too deeply",
        f"  file: {f}",
        "  hint: a config file needs a few levels of nesting at most; check that this is the right file",
    ]) + "\n")
    assert r.json()["error"]["code"] == "invalid-config"  # type: ignore[index]
    with pytest.raises(ConfigError):
        Config.from_toml("x = " + "{ a = " * 5000 + "1" + " }" * 5000)


@pytest.mark.parametrize("where", ["global", "project", "pyproject-with-table", "pyproject-without-table"])
def test_deeply_nested_found_files(where: str, run_cli: Any) -> None:
    if where == "global":
        f = global_config_path()
        text = DEEP
    elif where == "project":
        f = Path.cwd() / "pkgloader.toml"
        text = DEEP
    else:
        f = Path.cwd() / "pyproject.toml"
        text = ("[tool.pkgloader]\n" if where == "pyproject-with-table" else "") + DEEP
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    r = run_cli("config", "show")
    if where == "pyproject-without-table":
        # not ours to judge (pip will): it is skipped during discovery, as invalid TOML is
        assert r.code == 0, r
        return
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is not valid TOML: arrays or inline tables nested too deeply",
        f"  file: {f}",
        "  hint: a config file needs a few levels of nesting at most; check that this is the right file",
    ]) + "\n")


def test_deeply_nested_lock_file(run_cli: Any) -> None:
    with pytest.raises(ConfigError) as ei:
        LockFile.loads("version = 1\npackages = " + "[" * 5000)
    assert ei.value.render() == ("error[invalid-lock-file]: invalid lock file: not valid TOML: arrays or inline tables nested too deeply\n"
                                 "  hint: delete the file and lock again")
    Path("pkgloader.toml").write_text("")
    lock = Path.cwd() / "pkgloader.lock"
    lock.write_text("version = 1\npackages = " + "[" * 5000 + "]" * 5000 + "\n")
    r = run_cli("lock", "--offline")
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-lock-file]: invalid lock file {lock}: not valid TOML: arrays or inline tables nested too deeply",
        "  hint: delete the file and lock again",
    ]) + "\n")


# ---------------------------------------------------------------------------------------
# item 7: a config path that is not a regular file


def _cli(*args: Any, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process: a regression that blocks on a FIFO or reads /dev/zero
    for ever fails this test on the timeout instead of hanging the suite."""
    import pkgloader

    root = str(Path(pkgloader.__file__).parent.parent)  # the code under test, wherever it is
    return subprocess.run([sys.executable, "-m", "pkgloader", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": root, **(env or {})})


def _special(kind: str, tmp_path: Path) -> Path:
    if kind == "directory":
        path = tmp_path / "conf.d"
        path.mkdir()
    elif kind == "FIFO":
        path = tmp_path / "fifo.toml"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    return path


def _what(kind: str) -> str:
    return {"directory": "is a directory", "FIFO": "is not a regular file (it is a FIFO)",
            "/dev/zero": "is not a regular file (it is a character device)"}[kind]


KINDS = ["directory", "FIFO", "/dev/zero"]


@pytest.mark.parametrize("kind", KINDS)
def test_config_flag_path_that_is_not_a_file(kind: str, tmp_path: Path) -> None:
    path = _special(kind, tmp_path)
    r = _cli("config", "show", "--config", path)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "\n".join([
        f"error[invalid-config]: config file '{path}' given with --config {_what(kind)}",
        "  hint: give --config the path of a TOML file",
    ]) + "\n")


@pytest.mark.parametrize("var", ["PKGLOADER_CONFIG", "WKG_CONFIG_FILE"])
@pytest.mark.parametrize("kind", KINDS)
def test_config_env_path_that_is_not_a_file(kind: str, var: str, tmp_path: Path) -> None:
    path = _special(kind, tmp_path)
    r = _cli("config", "show", env={var: str(path)})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "\n".join([
        f"error[invalid-config]: config file '{path}' named by {var} {_what(kind)}",
        f"  hint: set {var} to the path of a TOML file, or unset it",
    ]) + "\n")


@pytest.mark.parametrize("where", ["global", "legacy", "project"])
@pytest.mark.parametrize("kind", ["directory", "FIFO", "symlink to /dev/zero"])
def test_found_config_path_that_is_not_a_file(kind: str, where: str) -> None:
    path = {"global": global_config_path(), "legacy": global_config_path().parent.parent / "warg" / "config.toml",
            "project": Path.cwd() / "pkgloader.toml"}[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        path.mkdir()
        what = "is a directory"
    elif kind == "FIFO":
        os.mkfifo(path)
        what = "is not a regular file (it is a FIFO)"
    else:
        path.symlink_to("/dev/zero")
        what = "is not a regular file (it is a character device)"
    r = _cli("config", "show")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "\n".join([
        f"error[invalid-config]: config file '{path}' {what}",
        "  hint: a config file must be a regular TOML file; remove or replace this one",
    ]) + "\n")


def test_missing_config_path_is_still_missing(tmp_path: Path, run_cli: Any) -> None:
    r = run_cli("config", "show", "--config", tmp_path / "nope.toml")
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{tmp_path / 'nope.toml'}' given with --config does not exist",
        "  hint: check the path; --config adds a layer on top of the other config files",
    ]) + "\n")


def test_a_huge_config_file_is_refused_unread(tmp_path: Path, run_cli: Any) -> None:
    f = tmp_path / "huge.toml"
    with open(f, "wb") as out:
        out.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs, no disk used
    r = run_cli("config", "show", "--config", f)
    assert (r.code, r.err) == (2, "\n".join([
        f"error[invalid-config]: config file '{f}' is larger than 4 MiB; not reading it",
        "  hint: a config file is a few KiB; check that the path names the right file",
    ]) + "\n")


def _in_thread(func: Any) -> Any:
    """``func()``'s result or exception, failing the test if it takes over 20 s (a FIFO)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.mark.parametrize("kind", KINDS)
def test_lock_file_that_is_not_a_file(kind: str, tmp_path: Path) -> None:
    path = _special(kind, tmp_path)
    with pytest.raises(LocalIOError) as ei:
        _in_thread(lambda: LockFile.load(path))
    what = {"directory": "is a directory", "FIFO": "is not a regular file (it is a FIFO)",
            "/dev/zero": "is not a regular file (it is a character device)"}[kind]
    assert (ei.value.exit_code, ei.value.render()) == (8, "\n".join([
        f"error[io-error]: the lock file {path} {what}",
        "  hint: remove it (a lock is written again), or name another file with --lock",
    ]))


def test_project_lock_that_is_a_fifo(tmp_path: Path) -> None:
    Path("pkgloader.toml").write_text("")
    os.mkfifo("pkgloader.lock")
    r = _cli("lock", "--offline")
    assert (r.returncode, r.stderr) == (8, "\n".join([
        f"error[io-error]: the lock file {Path.cwd() / 'pkgloader.lock'} is not a regular file (it is a FIFO)",
        "  hint: remove it (a lock is written again), or name another file with --lock",
    ]) + "\n")


# ---------------------------------------------------------------------------------------
# item 7: a hung credential helper and everything it started are gone after the timeout

HUNG_HELPER = """\
#!/bin/sh
# answers nothing; starts a child in the background and one in the foreground
sleep 300 &
echo $! > "{pids}"
sleep 300 &
echo $! >> "{pids}"
wait
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_hung_credential_helper_is_killed_with_its_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pids = tmp_path / "pids"
    helper = bin_dir / "docker-credential-hang"
    helper.write_text(HUNG_HELPER.format(pids=pids))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    docker.parent.mkdir(parents=True, exist_ok=True)
    docker.write_text(json.dumps({"credHelpers": {"r.example": "hang"}}))
    monkeypatch.setattr(_credentials, "HELPER_TIMEOUT", 0.5)
    clear_cache()
    try:
        with caplog.at_level("WARNING", logger="pkgloader"):
            assert find_credentials(Config.builtin(), "r.example", "r.example") is None
    finally:
        clear_cache()
    assert [r.getMessage() for r in caplog.records] == [
        f"credential helper docker-credential-hang did not answer within 0.5 s for r.example "
        f"(docker config {docker} (credHelpers: hang)); continuing without it"]
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in children if _alive(p)] == []

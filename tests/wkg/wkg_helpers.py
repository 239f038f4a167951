"""Shared builders for tests/wkg: a real component (wasm-tools component embed + new) that
exports ``get: func() -> u32`` answering 42, and a registry project fixture."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.wit import wasm_tools

ANSWER_WIT = "package test:answer@0.1.0;\n\nworld answer {\n  export get: func() -> u32;\n}\n"
ANSWER_WAT = '(module\n  (memory (export "memory") 1)\n  (func (export "get") (result i32) i32.const 42))\n'


def run_wasm_tools(*args: str | Path) -> str:
    done = subprocess.run([wasm_tools(), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def build_answer_component(tmp: Path, *, metadata: list[str] = ()) -> Path:  # type: ignore[assignment]
    """A component exporting ``get`` (returns 42); ``metadata``: ``wasm-tools metadata add``
    arguments (``--description``, ``--licenses``, ...)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "wit").mkdir(exist_ok=True)
    (tmp / "wit" / "world.wit").write_text(ANSWER_WIT)
    (tmp / "core.wat").write_text(ANSWER_WAT)
    run_wasm_tools("component", "embed", tmp / "wit", tmp / "core.wat", "-o", tmp / "embedded.wasm", "--world", "answer")
    out = tmp / "answer.wasm"
    run_wasm_tools("component", "new", tmp / "embedded.wasm", "-o", out)
    if metadata:
        run_wasm_tools("metadata", "add", out, *metadata, "-o", out)
    return out


# --- wasi:io / wasi:cli / wasi:http-like packages (written for these tests: the shapes the real
# ones have: resources, borrows, static functions, streams, results, variants, includes) -------

from support.wit import WitSpec  # noqa: E402

WASI_IO = WitSpec("wasi", "io", "0.2.3", body="""\
interface error {
  resource error {
    to-debug-string: func() -> string;
  }
}

interface poll {
  resource pollable {
    ready: func() -> bool;
    block: func();
  }
  poll: func(in: list<borrow<pollable>>) -> list<u32>;
}

interface streams {
  use error.{error};
  use poll.{pollable};

  variant stream-error {
    last-operation-failed(error),
    closed,
  }

  resource input-stream {
    read: func(len: u64) -> result<list<u8>, stream-error>;
    subscribe: func() -> pollable;
  }

  resource output-stream {
    check-write: func() -> result<u64, stream-error>;
    write: func(contents: list<u8>) -> result<_, stream-error>;
    blocking-flush: func() -> result<_, stream-error>;
    subscribe: func() -> pollable;
  }
}

world imports {
  import streams;
  import poll;
}
""")

WASI_CLI = WitSpec("wasi", "cli", "0.2.3", deps=(WASI_IO,), body="""\
interface environment {
  get-environment: func() -> list<tuple<string, string>>;
  get-arguments: func() -> list<string>;
}

interface exit {
  exit: func(status: result);
}

interface stdout {
  use wasi:io/streams@0.2.3.{output-stream};
  get-stdout: func() -> output-stream;
}

interface stderr {
  use wasi:io/streams@0.2.3.{output-stream};
  get-stderr: func() -> output-stream;
}

interface run {
  run: func() -> result;
}

world imports {
  include wasi:io/imports@0.2.3;
  import environment;
  import exit;
  import stdout;
  import stderr;
}

world command {
  include imports;
  export run;
}
""")

WASI_HTTP = WitSpec("wasi", "http", "0.2.3", deps=(WASI_CLI, WASI_IO), body="""\
interface types {
  use wasi:io/streams@0.2.3.{input-stream, output-stream};
  use wasi:io/error@0.2.3.{error as io-error};

  type field-key = string;
  type field-value = list<u8>;

  variant method {
    get,
    post,
    other(string),
  }

  variant error-code {
    dns-timeout,
    internal-error(option<string>),
  }

  resource fields {
    constructor();
    get: func(name: field-key) -> list<field-value>;
    set: func(name: field-key, value: list<field-value>) -> result;
  }

  type headers = fields;

  resource incoming-body {
    %stream: func() -> result<input-stream>;
  }

  resource incoming-request {
    method: func() -> method;
    headers: func() -> headers;
    consume: func() -> result<incoming-body>;
  }

  resource outgoing-body {
    write: func() -> result<output-stream>;
    finish: static func(this: outgoing-body) -> result<_, error-code>;
  }

  resource outgoing-response {
    constructor(headers: headers);
    set-status-code: func(status-code: u16) -> result;
    body: func() -> result<outgoing-body>;
  }

  resource response-outparam {
    set: static func(param: response-outparam, response: result<outgoing-response, error-code>);
  }
}

interface incoming-handler {
  use types.{incoming-request, response-outparam};
  handle: func(request: incoming-request, response-out: response-outparam);
}

world proxy {
  include wasi:cli/imports@0.2.3;
  export incoming-handler;
}
""")

CLI_APP = "package my:cli-app@0.1.0;\n\nworld app {\n  include wasi:cli/command@0.2.3;\n}\n"
HTTP_APP = "package my:http-app@0.1.0;\n\nworld app {\n  include wasi:http/proxy@0.2.3;\n}\n"

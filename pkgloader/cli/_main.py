"""Argument parsing, logging set-up, and error rendering with stable exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .. import _log
from .._errors import EXIT_CODES, PkgLoaderError

if TYPE_CHECKING:  # pragma: no cover
    import logging

log = _log.get_logger()

EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def _help_width() -> int:
    """What ``argparse.HelpFormatter`` computes with ``shutil.get_terminal_size()`` (COLUMNS,
    else the terminal of stdout, else 80; minus 2), without importing ``shutil`` (and
    bz2, lzma, fnmatch with it) at every ``add_argument`` of a run that prints no help."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns - 2


class _Parser(argparse.ArgumentParser):
    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        hint = _did_you_mean(self, message) or f"run '{self.prog} --help'"
        sys.stderr.write(f"error[usage]: {message}\n  hint: {hint}\n")
        raise SystemExit(2)


def _did_you_mean(parser: argparse.ArgumentParser, message: str) -> str | None:
    """A close command or option for a mistyped one (argparse 3.11 has no suggestions)."""
    import difflib
    import re

    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        choices = re.findall(r"'([^']*)'", m.group(2))
        close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
        return f"did you mean '{close[0]}'? (run '{parser.prog} --help' for the commands)" if close else None
    m = re.search(r"unrecognized arguments: (.*)", message)
    if m:
        options = sorted(_option_strings(parser))
        for word in m.group(1).split():
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=", 1)[0], options, n=1, cutoff=0.7)
                if close:
                    return f"did you mean {close[0]}? (run '{parser.prog} --help' for the options)"
    return None


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    out: set[str] = set()
    for action in parser._actions:
        out.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return out


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", action="append", default=[],
                   help="add a config file as the highest file layer (repeatable; built-ins and other files still apply)")
    g.add_argument("--registry", metavar="NAME",
                   help="use this registry for the packages named on the command line (overrides config)")
    g.add_argument("--cache-dir", metavar="DIR", help="cache directory (default: PKGLOADER_CACHE_DIR or the platform cache dir)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv: a line per HTTP request and response); shows tracebacks")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")


# which module registers each command: a run builds only the parser it needs (argparse set-up
# of every command costs as much as a small fetch); help, typos and no command build them all
_COMMAND_MODULES = {
    "fetch": "_fetch_cmd", "versions": "_fetch_cmd", "info": "_fetch_cmd", "publish": "_fetch_cmd",
    "lock": "_project_cmd", "sync": "_project_cmd", "update": "_project_cmd", "init": "_project_cmd",
    "config": "_config_cmd", "cache": "_cache_cmd", "completion": "_completion_cmd",
    "export": "_airgap_cmd", "import": "_airgap_cmd",
    "verify": "_verify_cmd",  # provenance (README, Provenance)
}
_MODULE_ORDER = ("_fetch_cmd", "_project_cmd", "_config_cmd", "_cache_cmd", "_airgap_cmd", "_completion_cmd", "_verify_cmd")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``command`` given and known) only that command's module."""
    import importlib

    from .. import __version__

    parser = _Parser(
        prog="pkgloader",
        description="Find, verify and cache WebAssembly component packages (WIT packages and components).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pkgloader {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    wanted = _COMMAND_MODULES.get(command or "")
    for name in _MODULE_ORDER if wanted is None else (wanted,):
        importlib.import_module(f".{name}", __package__).register(sub, _common)
    return parser


def _format(record: logging.LogRecord) -> str:
    return f"{record.levelname.lower()}: {record.getMessage()}"


_LOGGERS = ("pkgloader", "pkgloader.http")
Saved = list[tuple["logging.Logger", list["logging.Handler"], int, bool]]


def _save_logging() -> Saved:
    import logging

    saved = []
    for name in _LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, list(lg.handlers), lg.level, lg.propagate))
    return saved


def _restore_logging(saved: Saved) -> None:
    """Undo _setup_logging, so an in-process caller (a build tool, a test) is left as it was."""
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def _setup_logging(verbose: int, quiet: bool) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter()
    formatter.format = _format  # type: ignore[method-assign]
    handler.setFormatter(formatter)
    root = logging.getLogger("pkgloader")
    root.handlers[:] = [handler]
    root.propagate = False
    if quiet:
        root.setLevel(logging.ERROR)
    elif verbose >= 1:
        root.setLevel(logging.DEBUG)
    else:
        root.setLevel(logging.WARNING)
    # one line per HTTP request and response (``pkgloader.http``) with -vv only
    logging.getLogger("pkgloader.http").setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def run(argv: Sequence[str]) -> int:
    argv = list(argv)
    parser = build_parser(argv[0] if argv else None)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    verbose = getattr(args, "verbose", 0)
    quiet = getattr(args, "quiet", False)
    if verbose or "logging" in sys.modules:
        saved = _save_logging()
        _setup_logging(verbose, quiet)
        try:
            return _dispatch(args, verbose)
        finally:
            _restore_logging(saved)
    # nothing has imported logging: set it up only if a warning is actually logged (see _log)
    used: list[Saved] = []

    def set_up() -> None:
        used.append(_save_logging())
        _setup_logging(verbose, quiet)

    _log.on_first_use(set_up)
    try:
        return _dispatch(args, verbose)
    finally:
        _log.on_first_use(None)
        if used:
            _restore_logging(used[0])


#: the commands whose --json output always has "fetched" and "errors" lists
_LISTING_COMMANDS = frozenset(("cmd_fetch", "cmd_sync", "cmd_lock", "cmd_update"))


def _dispatch(args: argparse.Namespace, verbose: int) -> int:
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except PkgLoaderError as exc:
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(exc.render() + "\n")
        if getattr(args, "json", False):
            data: dict[str, Any] = {"error": exc.to_json()}
            if getattr(func, "__name__", "") in _LISTING_COMMANDS:  # every package's outcome, as on success
                data.update(fetched=[], errors=[exc.to_json()])
            emit_json(data)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so, and show the traceback with -v
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(
            f"error[internal-error]: unexpected {type(exc).__name__}: {exc}\n"
            "  hint: this is a bug in pkgloader; rerun with -v and report the output\n"
        )
        return 1


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def load_config(args: argparse.Namespace) -> Any:
    """The config exactly as every command sees it, with warnings printed once."""
    from .._config import Config

    cfg = Config.load(config_files=args.config, registry=args.registry, cache_dir=args.cache_dir)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return cfg

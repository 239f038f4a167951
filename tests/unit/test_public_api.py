"""The library's public surface: everything it raises or returns is exported, listed by
dir() and documented, and constructors say what they take."""

from __future__ import annotations

import inspect
import pydoc

import pkgloader
from pkgloader import _errors


def test_every_error_class_is_exported() -> None:
    raised = {name for name, obj in vars(_errors).items()
              if inspect.isclass(obj) and issubclass(obj, _errors.PkgLoaderError)}
    assert raised <= set(pkgloader.__all__), raised - set(pkgloader.__all__)
    assert issubclass(pkgloader.BodyTooLarge, pkgloader.RegistryError)


def test_returned_types_are_exported() -> None:
    for name in ("FetchResult", "Release", "VersionInfo", "ProjectResult", "Project", "PublishResult"):
        assert inspect.isclass(getattr(pkgloader, name)), name


def test_dir_and_help_list_the_public_api() -> None:
    listed = dir(pkgloader)
    for name in ("Client", "AsyncClient", "Config", "PkgLoaderError", "ResolutionConflict", "LocalIOError"):
        assert name in listed
    text = pydoc.render_doc(pkgloader, renderer=pydoc.plaintext)
    assert "class Client" in text and "class AsyncClient" in text and "class LockOutOfDate" in text


def test_constructors_take_explicit_documented_keywords() -> None:
    for cls in (pkgloader.Client, pkgloader.AsyncClient):
        params = inspect.signature(cls).parameters
        assert list(params) == ["config", "cache_dir", "offline", "strict", "observer", "progress", "verify"]
        assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name in params:
            assert f"{name}:" in (cls.__doc__ or ""), (cls, name)

"""pkgloader: find, verify and cache WebAssembly component packages."""

from ._version import __version__

__all__ = ["__version__"]

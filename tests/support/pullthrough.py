"""A pull-through cache in front of a test registry: a second ``docker-registry`` in proxy
mode (``proxy: remoteurl: http://127.0.0.1:<origin port>``), built on ``RegistryServer``.

    origin = registry_factory()
    mirror = PullThroughRegistry(workdir, remote_url=origin.url).start()
    ...
    stop(origin); restart(origin)        # the same port and storage: the mirror's upstream is back

distribution in proxy mode serves the upstream's manifests, blobs and tag lists, keeps
what it fetched, serves that while the upstream is down, and refuses pushes.
``restart`` starts a stopped ``RegistryServer`` again on its port, with its storage (the
config file it wrote holds the port), so a mirror's ``remoteurl`` stays right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support.registry import RegistryServer, find_binary

__all__ = ["PullThroughRegistry", "restart"]


@dataclass
class PullThroughRegistry(RegistryServer):
    """``RegistryServer`` with ``proxy: remoteurl:`` (anonymous upstream only)."""

    remote_url: str = ""

    def _config(self, auth: Any) -> dict[str, Any]:
        config = super()._config(auth)
        if not self.remote_url:
            raise ValueError("PullThroughRegistry needs remote_url")
        config["proxy"] = {"remoteurl": self.remote_url}
        return config


def restart(server: RegistryServer) -> RegistryServer:
    """Start a stopped server again with the config (port, storage) it had."""
    if server.running:
        raise RuntimeError("the registry is running")
    binary = server.binary or find_binary("docker-registry")
    server._spawn(binary)
    try:
        server._wait_ready()
    except BaseException:
        server._kill()
        raise
    return server

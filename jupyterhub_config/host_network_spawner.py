"""DockerSpawner on the host's network, for Docker hosts without a bridge.

On machines where Docker's default bridge cannot be created (as the demo and
test machines here), containers can only use the host's network. DockerSpawner
13 then refuses port bindings unless ``use_internal_ip`` is set, and its docs
ask for ``get_ip_and_port`` to be overridden. Each server listens on a free
port of its own on 127.0.0.1, where the proxy on the same host reaches it.

A real Docker host uses a user-defined network shared with the hub instead
(see the README): ``c.DockerSpawner.network_name = "jupyterhub"``.
"""
from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from traitlets import default


class HostNetworkDockerSpawner(DockerSpawner):
    """Servers on the host's network, each on its own free port on 127.0.0.1."""

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        # On the host network there is nothing to publish: no port bindings.
        return True

    @default("ip")
    def _default_ip(self):
        return "127.0.0.1"

    async def start(self):
        # Every server shares the host's ports: pick a free one each start.
        self.port = random_port()
        return await super().start()

    async def get_ip_and_port(self):
        return self.ip, self.port

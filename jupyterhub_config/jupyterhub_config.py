"""The demo hub for custom-images.

Runs JupyterHub (3.x, 4.x or 5.x) on 127.0.0.1 with DummyAuthenticator and
starts the custom-images service as a hub-managed service. Start it with
`.ci/demo` (which builds the service first), or by hand:

    jupyterhub -f jupyterhub_config/jupyterhub_config.py

Everything it writes (hub database, cookie secret, proxy pid, the demo crypt
key) goes to CUSTOM_IMAGES_DEMO_DIR (default: ./data/demo).

Environment:
    CUSTOM_IMAGES_DEMO_PORT          public port of the proxy (default 8000); the
                                     proxy API uses +1, the hub +81, the service +10
    CUSTOM_IMAGES_DEMO_DIR           state folder (default ./data/demo)
    CUSTOM_IMAGES_DEMO_ADMIN_PASSWORD  password for every demo user (default: any)
    CUSTOM_IMAGES_LAUNCH_TOKEN       token of the spawner hook (launch scope);
                                     generated into the state folder if unset
    CUSTOM_IMAGES_SERVICE_TOKEN      the service's own API token (default: the
                                     hub makes one and hands it to the service)
    CUSTOM_IMAGES_DEMO_ADMIN_TOKEN   if set, a service `custom-images-admin-cli`
                                     with this token may manage users and tokens
                                     (scripting the demo hub, e.g. in tests)
    CUSTOM_IMAGES_DEMO_SPAWNER       docker, local, or auto (default: docker when a
                                     Docker engine answers, else local processes)
    CUSTOM_IMAGES_DEMO_IMAGE         the standard environment's image (DockerSpawner)
    CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX  container names (default "jupyter")
    CUSTOM_IMAGES_DEMO_EXTERNAL_SERVICE  1: the hub does not start the service; it is
                                     expected at 127.0.0.1:<port + 10> (a container, say)
                                     with CUSTOM_IMAGES_SERVICE_TOKEN as its API token
    CUSTOM_IMAGES_*, DOCKER_HOST     passed on to the service
"""
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVICE_NAME = "custom-images"

port = int(os.environ.get("CUSTOM_IMAGES_DEMO_PORT", "8000"))
state_dir = Path(os.environ.get("CUSTOM_IMAGES_DEMO_DIR", ROOT / "data" / "demo")).resolve()
state_dir.mkdir(parents=True, exist_ok=True)


def _persistent_secret(name, make):
    """A value kept in the state folder so that restarts of the demo agree."""
    path = state_dir / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


# -- the hub ---------------------------------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = port + 81
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state_dir / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True

# Debian's configurable-http-proxy finds its modules only with NODE_PATH; the
# hub passes its own environment to the proxy it starts.
if Path("/usr/share/nodejs").is_dir():
    paths = [p for p in os.environ.get("NODE_PATH", "").split(":") if p]
    if "/usr/share/nodejs" not in paths:
        os.environ["NODE_PATH"] = ":".join(paths + ["/usr/share/nodejs"])

# -- users -----------------------------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
if os.environ.get("CUSTOM_IMAGES_DEMO_ADMIN_PASSWORD"):
    c.DummyAuthenticator.password = os.environ["CUSTOM_IMAGES_DEMO_ADMIN_PASSWORD"]
c.Authenticator.admin_users = {"admin"}
# JupyterHub 5 allows nobody by default; 3 and 4 ignore this setting.
c.Authenticator.allow_all = True

# -- the spawner -------------------------------------------------------------
# DockerSpawner when a Docker engine answers: the researcher's checked image
# becomes their server. Without an engine, local processes (the hook still
# asks the service, but no image is run).
def _docker_unavailable():
    """Why DockerSpawner cannot be used here, or None."""
    try:
        import docker
        import dockerspawner  # noqa: F401

        docker.from_env(timeout=5).ping()
    except Exception as e:  # no engine, no permission, no dockerspawner
        return f"{type(e).__name__}: {e}"
    return None


spawner_choice = os.environ.get("CUSTOM_IMAGES_DEMO_SPAWNER", "auto")
unavailable = _docker_unavailable() if spawner_choice in ("auto", "docker") else "CUSTOM_IMAGES_DEMO_SPAWNER=local"
if unavailable and spawner_choice == "docker":
    raise SystemExit(f"custom-images demo: CUSTOM_IMAGES_DEMO_SPAWNER=docker, but no Docker engine answers ({unavailable})")
if not unavailable:
    sys.path.insert(0, str(HERE))
    # Host networking: the default bridge cannot be created on these machines. A
    # real Docker host uses a user-defined network shared with the hub (README).
    c.JupyterHub.spawner_class = "host_network_spawner.HostNetworkDockerSpawner"
    # The hub's standard environment: what a user who picks no custom image gets.
    c.DockerSpawner.image = os.environ.get("CUSTOM_IMAGES_DEMO_IMAGE", "custom-images-demo/jupyterhub:3.0")
    # What the check verified: the image's entrypoint with jupyterhub-singleuser.
    c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
    c.DockerSpawner.remove = True
    c.DockerSpawner.prefix = os.environ.get("CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX", "jupyter")
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 120
else:
    if spawner_choice == "auto":
        print(f"custom-images demo: no Docker engine ({unavailable}); servers run as local processes, not in the chosen image", file=sys.stderr)
    # Notebook servers run as the hub's own user (the hook still asks the service at Start).
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    c.Spawner.args = ["--allow-root"] if os.getuid() == 0 else []
    c.SimpleLocalProcessSpawner.home_dir_template = str(state_dir / "home" / "{username}")

# -- the custom-images service ---------------------------------------------
node = shutil.which("node") or "node"
service_env = {
    key: value
    for key, value in os.environ.items()
    if key.startswith("CUSTOM_IMAGES_") and not key.startswith("CUSTOM_IMAGES_DEMO_")
    or key in ("DOCKER_HOST", "NODE_EXTRA_CA_CERTS")
}
# Tokens are given to the hub, not to the service's environment.
service_env.pop("CUSTOM_IMAGES_LAUNCH_TOKEN", None)
service_env.pop("CUSTOM_IMAGES_SERVICE_TOKEN", None)
# A demo key so that users can store registry passwords; a real hub sets its own.
service_env.setdefault(
    "CUSTOM_IMAGES_CRYPT_KEY",
    _persistent_secret("crypt_key", lambda: __import__("base64").b64encode(secrets.token_bytes(32)).decode()),
)
service_env.setdefault(
    "CUSTOM_IMAGES_DATABASE_URL", f"sqlite://{ROOT / 'data' / 'custom-images.sqlite'}"
)
# The demo hub starts with two systems (created once; admins edit them in the service), and a third
# for this machine's Docker engine when .ci/demo started a registry on loopback.
def _demo_systems():
    systems = json.loads((HERE / "demo-systems.json").read_text())
    registry = os.environ.get("CUSTOM_IMAGES_DEMO_REGISTRY")
    if registry:
        systems.insert(0, {
            "slug": "this-machine",
            "displayName": "This machine (Docker)",
            "description": "Notebook servers in this machine's Docker engine",
            "enabled": True,
            "allowedRegistries": [f"{registry}/*", "docker.io/*", "quay.io/*", "ghcr.io/*"],
            "mountPrefixes": ["/home/jovyan", "/data"],
            "defaultMountPath": "/home/jovyan/work",
            "spawner": "docker",
            # "Build an image": results go to the demo registry; the demo image is the base offered.
            # Building needs a limit on the processes of build steps (.ci/demo sets one up where it can).
            "buildEnabled": bool(os.environ.get("CUSTOM_IMAGES_BUILD_CGROUP_PARENT")),
            "buildPushTo": f"{registry}/built",
            # Like the demo's servers, build steps use the host's network (no default bridge needed).
            "buildNetwork": "host",
            "buildBaseImages": [f"Debian with JupyterHub 3.0 = {registry}/demo/jupyterhub:3.0"],
        })
    path = state_dir / "demo-systems.json"
    path.write_text(json.dumps(systems))
    return str(path)


service_env.setdefault("CUSTOM_IMAGES_SYSTEMS_FILE", _demo_systems())
if os.environ.get("PUBLIC_URL"):
    service_env["JUPYTERHUB_PUBLIC_URL"] = os.environ["PUBLIC_URL"]

launch_token = os.environ.get("CUSTOM_IMAGES_LAUNCH_TOKEN") or _persistent_secret(
    "launch_token", lambda: secrets.token_hex(32)
)

service = {
    "name": SERVICE_NAME,
    "url": f"http://127.0.0.1:{port + 10}",
    # Logging in to our own service needs no confirmation page.
    "oauth_no_confirm": True,
    # What a user's login token may carry to the service (JupyterHub >= 3).
    "oauth_client_allowed_scopes": [
        "custom:custom-images:admin",
    ],
    "display": True,
    **({"api_token": os.environ["CUSTOM_IMAGES_SERVICE_TOKEN"]} if os.environ.get("CUSTOM_IMAGES_SERVICE_TOKEN") else {}),
}
if os.environ.get("CUSTOM_IMAGES_DEMO_EXTERNAL_SERVICE") == "1":
    # An external service (a container, another host): the hub routes to its url and knows
    # its token; whoever runs it gives it the JUPYTERHUB_* variables (README).
    if "api_token" not in service:
        raise SystemExit("custom-images demo: CUSTOM_IMAGES_DEMO_EXTERNAL_SERVICE=1 needs CUSTOM_IMAGES_SERVICE_TOKEN")
else:
    service.update(
        # A larger young generation: a launch allocates short-lived objects, and fewer scavenges
        # gave the launch bench 0.53-0.58 of the bare app instead of 0.49-0.56 (Node's docs suggest
        # benchmarking this flag; 64 MiB did no better). Costs at most 3 x 16 MiB more heap.
        command=[node, "--max-semi-space-size=32", str(ROOT / "dist" / "server" / "main.js")],
        cwd=str(ROOT),
        environment=service_env,
    )

c.JupyterHub.services = [
    service,
    {
        # The token the spawner hook (pre_spawn_hook) uses to ask launch parameters.
        "name": "custom-images-launcher",
        "api_token": launch_token,
    },
]

c.JupyterHub.custom_scopes = {
    "custom:custom-images:launch": {
        "description": "Ask custom-images for any user's launch parameters (the spawner hook).",
    },
    "custom:custom-images:admin": {
        "description": "Manage custom-images systems and their policies.",
    },
}

c.JupyterHub.load_roles = [
    {
        # The default user role has only `self`; users need access to the service.
        "name": "user",
        "scopes": ["self", f"access:services!service={SERVICE_NAME}"],
    },
    {
        # Sharing: a user's groups when the hook starts a shared image for them, and the
        # hub's group names for the share form. The clean-up: which users the hub still has
        # (data volumes of removed users are removed after a grace period). Launch links: the
        # visitor's server is started (and, when they ask, stopped) with the repository's image
        # (servers), and the service waits until it is ready (read:servers).
        "name": "custom-images-service",
        "description": "custom-images reads group membership, group names and user names, and starts servers for launch links.",
        "scopes": ["read:users:groups", "list:groups", "list:users", "servers", "read:servers"],
        "services": [SERVICE_NAME],
    },
    {
        "name": "custom-images-launcher",
        "description": "The spawner hook asks launch parameters for any user.",
        "scopes": ["custom:custom-images:launch", "read:users:name"],
        "services": ["custom-images-launcher"],
    },
    {
        "name": "custom-images-admin",
        "description": "Manage custom-images systems (hub admins have this anyway).",
        "scopes": ["custom:custom-images:admin", f"access:services!service={SERVICE_NAME}"],
        "users": ["admin"],
    },
]

if os.environ.get("CUSTOM_IMAGES_DEMO_ADMIN_TOKEN"):
    c.JupyterHub.services.append(
        {"name": "custom-images-admin-cli", "api_token": os.environ["CUSTOM_IMAGES_DEMO_ADMIN_TOKEN"]}
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "custom-images-admin-cli",
            "scopes": ["admin:users", "tokens", "admin:groups", "list:users", "read:users", "servers", "read:servers"],
            "services": ["custom-images-admin-cli"],
        }
    )

# -- the spawn form and the launch hook ------------------------------------
sys.path.insert(0, str(HERE))
from custom_images_hook import CustomImages  # noqa: E402

custom_images = CustomImages(
    # The hub reaches the service directly, not through the proxy.
    api_url=f"http://127.0.0.1:{port + 10}/services/{SERVICE_NAME}/api/v1/",
    token=launch_token,
    manage_url=f"/services/{SERVICE_NAME}/",
)
custom_images.configure(c)

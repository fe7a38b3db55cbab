"""JupyterHub configuration of the demo hub `dev/run.sh` starts, and the example for operators.

It runs r2dservice as a hub-managed service named ``binder`` (the name
jupyterhub-fancy-profiles expects) with the local builder. The three blocks an operator
copies are marked **[operator]**: the custom scopes, the roles that grant them, and the
service entry. Everything else is the demo: loopback only, sqlite, demo users with a
shared password.

Settings come from the environment so that `dev/run.sh` and the test suite can move
ports and folders (defaults in brackets):

    R2D_HUB_STATE           folder for the sqlite database, cookie secret, proxy pid [./hub-state]
    R2D_HUB_IP, R2D_HUB_PORT  where people open the hub [127.0.0.1, 8000]
    R2D_HUB_API_PORT        the hub's own API port (services talk to it) [8081]
    R2D_PROXY_API_PORT      configurable-http-proxy's API port [8001]
    R2D_SERVICE_NAME        the service's name, hence its URL /services/<name>/ [binder]
    R2D_SERVICE_PORT        the port r2dservice listens on [8585]
    R2D_SERVICE_CONFIG      r2dservice's config file [dev/r2dservice_config.py]
    R2DSERVICE_PYTHON       the Python that runs r2dservice [this one]
    R2D_DEMO_USER_PASSWORD  password of the demo users alice and bob (8+ characters)
    R2D_DEMO_ADMIN_PASSWORD password of the demo admin `admin` (32+ characters)
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when JupyterHub loads this file)

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("R2D_HUB_STATE", "hub-state")).resolve()
STATE.mkdir(parents=True, exist_ok=True)
SERVICE = os.environ.get("R2D_SERVICE_NAME", "binder")
SERVICE_PORT = int(os.environ.get("R2D_SERVICE_PORT", "8585"))

# ----------------------------------------------------------------- the demo hub
# Loopback only: the demo users' passwords are printed on the terminal.
c.JupyterHub.bind_url = "http://{}:{}/".format(
    os.environ.get("R2D_HUB_IP", "127.0.0.1"), os.environ.get("R2D_HUB_PORT", "8000")
)
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("R2D_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
# The hub starts configurable-http-proxy (npm, 5.x: it streams the build events).
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{}".format(
    os.environ.get("R2D_PROXY_API_PORT", "8001")
)
# After login, people land on r2dservice's page, not on a notebook server.
c.JupyterHub.default_url = f"/services/{SERVICE}/"

# Launch (dev/run.sh sets R2D_DEMO_HUB_CONNECT_IP, the Docker bridge's gateway): users'
# servers are containers of the images r2dservice builds (r2dservice's DockerSpawner),
# named after their repository, and they reach the hub at that address, where it
# listens instead of 127.0.0.1. Without it the demo has no servers: images only.
CONNECT_IP = os.environ.get("R2D_DEMO_HUB_CONNECT_IP")
if CONNECT_IP:
    c.JupyterHub.spawner_class = "r2dservice.spawners.docker.R2DDockerSpawner"
    c.JupyterHub.hub_ip = CONNECT_IP
    c.JupyterHub.hub_connect_ip = CONNECT_IP
    c.JupyterHub.allow_named_servers = True
    c.DockerSpawner.remove = True
    c.DockerSpawner.pull_policy = "never"  # the images are in the local engine already
    c.DockerSpawner.prefix = "r2d-demo"

# Demo users: alice may build, bob may use the service but not start builds, admin
# administers it (and the hub). One shared password for alice and bob, another one
# for admin (JupyterHub asks 32 characters of an admin password).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("R2D_DEMO_USER_PASSWORD")
c.SharedPasswordAuthenticator.admin_password = os.environ.get("R2D_DEMO_ADMIN_PASSWORD")
c.Authenticator.allowed_users = {"alice", "bob"}
c.Authenticator.admin_users = {"admin"}

# ----------------------------------------------------------------- [operator] scopes
# r2dservice's permissions are custom scopes (JupyterHub >= 3). Using the service at all
# is the built-in scope access:services!service=<name>.
c.JupyterHub.custom_scopes = {
    "custom:r2dservice:build": {
        "description": "Start new image builds with r2dservice (existing images need no scope).",
    },
    "custom:r2dservice:admin": {
        "description": "See and cancel everyone's r2dservice builds.",
    },
}

# ----------------------------------------------------------------- [operator] roles
# Who gets which scope. To let every hub user build, put the first role's scopes into
# the built-in `user` role instead:
#   {"name": "user", "scopes": ["self", f"access:services!service={SERVICE}",
#                               "custom:r2dservice:build"]}
c.JupyterHub.load_roles = [
    {
        "name": "r2dservice-builders",
        "description": "Use r2dservice and start builds",
        "scopes": [f"access:services!service={SERVICE}", "custom:r2dservice:build"],
        "users": ["alice"],
    },
    {
        "name": "r2dservice-viewers",
        "description": "Use r2dservice: get images that exist already, no new builds",
        "scopes": [f"access:services!service={SERVICE}"],
        "users": ["bob"],
    },
    {
        "name": "r2dservice-admins",
        "description": "Administer r2dservice: see and cancel everyone's builds",
        "scopes": [
            f"access:services!service={SERVICE}",
            "custom:r2dservice:build",
            "custom:r2dservice:admin",
        ],
        "users": ["admin"],
    },
    {
        # The service's own token: count every user's servers of one repository, for
        # c.Launcher.per_repo_quota (read only; launches use the caller's token).
        "name": "r2dservice-service",
        "description": "Let r2dservice count the servers running each repository",
        "scopes": ["list:users", "read:servers"],
        "services": [SERVICE],
    },
]

# ----------------------------------------------------------------- [operator] service
# A managed service: the hub starts r2dservice with `command` and hands it its token, OAuth
# client and URLs in JUPYTERHUB_* variables; r2dservice listens where `url` says, under
# /services/<name>/. For an external service (Kubernetes: the helm chart), drop `command`
# and `environment`, add "api_token": "<a long random string>", and give r2dservice the
# same token and the hub's API URL as JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL and
# JUPYTERHUB_SERVICE_NAME (see docs/auth.md).
c.JupyterHub.services = [
    {
        "name": SERVICE,
        "url": f"http://127.0.0.1:{SERVICE_PORT}",
        "command": [
            os.environ.get("R2DSERVICE_PYTHON", sys.executable),
            "-m",
            "r2dservice",
            "-f",
            os.environ.get("R2D_SERVICE_CONFIG", str(HERE / "r2dservice_config.py")),
        ],
        # A managed service gets only a few of the hub's variables: pass what the
        # builds need (the docker CLI wants HOME; repo2docker_config.py reads R2D_BASE_IMAGE).
        "environment": {
            k: os.environ[k]
            for k in (
                "HOME",
                "R2D_BASE_IMAGE",
                "DOCKER_HOST",
                "DOCKER_CONFIG",
                "R2D_DEMO_HUB_CONNECT_IP",  # r2dservice_config.py: launch on or off
            )
            if k in os.environ
        },
        # The OAuth tokens browsers get after logging in to r2dservice may carry these
        # scopes (each only if the user has it): without this, nobody could build by browser.
        # "servers!user" (the user's own servers) lets r2dservice start a built image in
        # the user's server (v2/ links, Launch): see docs/launch.md.
        "oauth_client_allowed_scopes": [
            "custom:r2dservice:build",
            "custom:r2dservice:admin",
            "servers!user",
        ],
        # Part of the hub: no "Authorize access?" page on the first visit.
        "oauth_no_confirm": True,
        "display": True,
    },
]

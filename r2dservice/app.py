"""The R2DService application: configuration, wiring, routes, start and stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from urllib.parse import urlparse

import tornado.web
from jupyterhub.services.auth import HubOAuth
from tornado.log import LogFormatter
from traitlets import (
    Any,
    Bool,
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    import_item,
    observe,
    validate,
)
from traitlets.config import Application, catch_config_error

from ._version import __version__
from .auth import R2DServiceAuth
from .builders.base import Builder
from .builders.local import LocalBuilder
from .builders.repo2docker import Repo2DockerBuilder
from .builds import BuildManager
from .configfile import load_or_exit
from .handlers import api, build, health, home, launch, metrics, oauth, openapi, pages
from .handlers import base as base_handlers
from .handlers.limits import StreamLimits
from .httpserver import HTTPServer
from .launch import Launcher
from .metrics import observe as observe_builds
from .naming import NamingError, split_image_name, validate_image_name
from .providers.resolver import Resolver, provider_classes
from .records import MemoryHistory, Records
from .registry import LocalImageChecker, RegistryError, RegistryImageChecker
from .sharedcheck import Shared
from .sharedlimits import SharedLimits
from .spec import redact
from .store import BuildStore, StoreError
from .warmcache import PreviousImages

BUILDERS = {
    "local": "r2dservice.builders.local.LocalBuilder",
    "kubernetes": "r2dservice.builders.kubernetes.KubernetesBuilder",
}

aliases = {
    "f": "R2DService.config_file",
    "config": "R2DService.config_file",
    "ip": "R2DService.ip",
    "port": "R2DService.port",
    "base-url": "R2DService.base_url",
    "builder": "R2DService.builder_class",
    "image-prefix": "R2DService.image_prefix",
    "log-level": "Application.log_level",
}
flags = {
    "generate-config": (
        {"R2DService": {"generate_config": True}},
        "Write a commented configuration file (to -f, default r2dservice_config.py) and exit.",
    ),
    "debug": ({"Application": {"log_level": logging.DEBUG}}, "Log at debug level."),
    "no-auth": (
        {"R2DService": {"auth_enabled": False}},
        "Turn authentication off: ANYONE who can reach the service can build.",
    ),
}


def configurable_classes(kubernetes: bool = True) -> list[type]:
    """Every class the service's configuration reaches (for config files and docs)."""
    classes = [
        R2DService,
        R2DServiceAuth,
        HubOAuth,
        BuildManager,
        Repo2DockerBuilder,
        LocalBuilder,
        RegistryImageChecker,
        LocalImageChecker,
        Launcher,
        Resolver,
        *provider_classes(),
        BuildStore,
        SharedLimits,
    ]
    if kubernetes:
        from .builders.kubernetes import KubernetesBuilder

        classes.append(KubernetesBuilder)
    return classes


# gc thresholds while serving (see serve()).
GC_THRESHOLDS = (50_000, 20, 20)


class R2DService(Application):
    """Build container images from repositories with repo2docker."""

    name = "r2dservice"
    version = __version__
    description = """Build container images from repositories with repo2docker, as a
    JupyterHub service, and stream the builds' progress (BinderHub-compatible)."""
    examples = """
    r2dservice --generate-config            # write r2dservice_config.py
    r2dservice -f r2dservice_config.py      # run with it
    r2dservice build-pod -f config.py gh/owner/repo/main --ref <sha>
    """
    aliases = aliases
    flags = flags
    # A config file that fails half-way must stop the start, not leave a service
    # running on half its configuration.
    raise_config_file_errors = True
    subcommands = {
        "build-pod": (
            "r2dservice.buildpod.BuildPodApp",
            "Print the Kubernetes build pod manifest for a repository, without a cluster.",
        ),
    }

    config_file = Unicode("r2dservice_config.py", help="The configuration file to load (-f).").tag(
        config=True
    )
    generate_config = Bool(False, help="Write a commented configuration file and exit.").tag(
        config=True
    )
    ip = Unicode(
        help="""The address the service listens on. Default: the host of
        $JUPYTERHUB_SERVICE_URL (set by the hub for a managed service), else 127.0.0.1.""",
    ).tag(config=True)
    port = Integer(
        help="""The port the service listens on. Default: the port of
        $JUPYTERHUB_SERVICE_URL, else 8585.""",
    ).tag(config=True)
    base_url = Unicode(
        help="""The URL prefix every route lives under. Default:
        $JUPYTERHUB_SERVICE_PREFIX (under JupyterHub: /services/<name>/); with auth on
        and only $JUPYTERHUB_SERVICE_NAME given, the hub's /services/<name>/; else /.""",
    ).tag(config=True)

    @default("ip")
    def _ip_default(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _port_default(self):
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
        return url.port or (443 if url.scheme == "https" else 80) if url.hostname else 8585

    @default("base_url")
    def _base_url_default(self):
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix:
            return prefix
        name = os.environ.get("JUPYTERHUB_SERVICE_NAME")
        if name and self.auth_enabled:
            # Where the hub's proxy sends /services/<name>/ (it does not strip the prefix).
            return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + f"/services/{name}/"
        return "/"

    @validate("base_url")
    def _slashes(self, proposal):
        value = "/" + proposal.value.strip("/")
        return value if value == "/" else value + "/"

    auth_enabled = Bool(
        True,
        help="""Require JupyterHub authentication. Set to False only on purpose: then
        anyone who can reach the service can build, see and cancel every build.""",
    ).tag(config=True)
    builder_class = Unicode(
        "local",
        help="""How builds run: "local" (a repo2docker process against the local Docker
        engine), "kubernetes" (build pods), or the import path of a Builder subclass.""",
    ).tag(config=True)
    image_prefix = Unicode(
        "r2d-",
        help="""Prefix of every image name. With a registry, start it with the registry's
        host (and port): "registry.example.org:5000/binder/r2d-".""",
    ).tag(config=True)
    use_registry = Bool(
        None,
        allow_none=True,
        help="""Push images to a registry and look for them there. Default: yes when
        image_prefix names a registry host or the builder is "kubernetes"; otherwise
        images stay in the local Docker engine.""",
    ).tag(config=True)
    keepalive_interval = Float(
        15, help="Seconds between `:keepalive` comments on idle event streams."
    ).tag(config=True)

    # Connection hygiene: bounds on what one client can hold or send.
    max_header_size = Integer(
        64 * 1024, help="Bytes of a request's headers (the request line included) at most."
    ).tag(config=True)
    max_body_size = Integer(
        1024 * 1024,
        help="Bytes of a request's body at most: the API's bodies are small JSON objects.",
    ).tag(config=True)
    header_timeout = Float(
        20,
        help="""Seconds a client has to send a request's headers, counted from the
        connection's first byte (or the previous response): a client that trickles its
        request a byte at a time (a slowloris) is cut off at this, however steadily it
        sends. Also how long an idle keep-alive connection stays open.""",
    ).tag(config=True)
    body_timeout = Float(30, help="Seconds a client has to send a request's body.").tag(config=True)
    listen_backlog = Integer(
        2048,
        help="""Connections the kernel queues for the service before it accepts them (the
        listen backlog; the kernel caps it at net.core.somaxconn). A crowd that arrives
        at once past this loses SYNs and retries a second or more later.""",
    ).tag(config=True)
    max_streams_per_user = Integer(
        100,
        help="""Event streams (build/ and api/builds/<id>/events) one user may hold open
        at once; past it, 429 and no new build. 0: no limit. A client that streams for
        many people under one token (a tool's service token) counts as one user. With
        auth off nobody is identified and nobody is limited.""",
    ).tag(config=True)
    stream_idle_timeout = Float(
        3600,
        help="""Seconds an event stream stays open while its build sends nothing but
        keepalives; then it ends (the build goes on, a client's reconnect with
        Last-Event-ID resumes). 0: no limit.""",
    ).tag(config=True)
    health_cache_seconds = Float(
        5,
        help="""Seconds /health reuses its registry check, so that frequent probes
        (several replicas, a load balancer, a kubelet) do not each ask the registry.
        Probes at the same time share one check. 0: check every time.""",
    ).tag(config=True)

    db_url = Unicode(
        "sqlite:///r2dservice.sqlite",
        help="""Where build records (every build, its requesters and its log) are kept:
        a SQLAlchemy URL. Default: a sqlite file in the working directory, as
        JupyterHub's. Use PostgreSQL ("postgresql://user:password@host/db") to share
        one history between several replicas. "" keeps builds in memory only, for
        c.BuildManager.finished_build_retention seconds.""",
    ).tag(config=True)

    metrics_token = Unicode(
        "",
        help="""When set, /metrics answers only requests with
        `Authorization: Bearer <metrics_token>`. Default: open, like /health.""",
    ).tag(config=True)

    template_paths = List(
        Unicode(),
        help="""Folders searched for the pages' Jinja2 templates before the built-in ones,
        as JupyterHub's: a page.html there that extends "templates/page.html" rebrands
        every page (see docs/pages.md).""",
    ).tag(config=True)
    template_vars = Dict(
        help="""Values every page template sees as template_vars: title, logo (a URL),
        about (HTML), banner (HTML shown on every page), as JupyterHub's.""",
    ).tag(config=True)
    static_paths = List(
        Unicode(),
        help="""Folders searched for <prefix>static/ files before the built-in ones: a
        logo, or a style.css that replaces the default look.""",
    ).tag(config=True)

    build_manager = Any()
    store = Any(None)
    history = Any()
    shared_limits = Any(None)
    authenticator = Any(None)
    launcher = Any(None)
    builder = Any()
    registry = Any()
    resolver = Any()
    images_check = Any()

    _documenting = False
    _images_error = ""  # the image check's last failure, logged once

    @property
    def classes(self):
        # kubernetes_asyncio costs ~80 MB of memory: load it only where it is used,
        # or to document it (--generate-config, --help-all).
        return configurable_classes(self._documenting or self.builder_class == "kubernetes")

    @default("log_format")
    def _log_format(self):
        return "%(color)s[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s %(module)s:%(lineno)d]%(end_color)s %(message)s"

    @default("log_level")
    def _log_level_default(self):
        return logging.INFO  # as JupyterHub: "listening on", builds started and ended

    @default("log_datefmt")
    def _log_datefmt(self):
        return "%Y-%m-%d %H:%M:%S"

    def _log_default(self):
        log = logging.getLogger("r2dservice")
        log.propagate = False
        if not log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(LogFormatter(fmt=self.log_format, datefmt=self.log_datefmt))
            log.addHandler(handler)
        log.setLevel(self.log_level)
        return log

    @observe("log_level")
    def _apply_log_level(self, change):
        # traitlets applies log_level to a logger named after the class; ours is "r2dservice".
        self.log.setLevel(change.new)

    @catch_config_error
    def initialize(self, argv=None):
        args = sys.argv[1:] if argv is None else argv
        self._documenting = bool({"--generate-config", "--help-all", "--help", "-h"} & set(args))
        super().initialize(argv)
        if self.subapp is not None:
            return
        if self.generate_config:
            return
        named = "config_file" in self.cli_config.get("R2DService", {})  # by -f / --config
        if self.config_file and os.path.exists(self.config_file):
            load_or_exit(self, self.config_file)
        elif named:
            self.exit_with(f"Configuration file {self.config_file} not found.")
        # Command-line settings win over the file's.
        self.update_config(self.cli_config)
        for logger in ("tornado.access", "tornado.application", "tornado.general"):
            logging.getLogger(logger).parent = self.log
        self.init_components()

    def exit_with(self, message: str) -> None:
        self.log.critical(message)
        self.exit(1)

    @property
    def pushes(self) -> bool:
        if self.use_registry is not None:
            return self.use_registry
        if self.builder_class == "kubernetes":
            return True
        try:
            host, _, _ = split_image_name(self.image_prefix + "x:y")
        except NamingError:
            return False
        return bool(host)

    def init_components(self) -> None:
        try:
            validate_image_name(self.image_prefix + "x:y")
        except NamingError:
            self.exit_with(
                f"c.R2DService.image_prefix = {self.image_prefix!r} does not make valid image "
                "names: use lowercase letters, digits and . _ - / (and host:port/ first)."
            )
        if not self.auth_enabled:
            self.log.warning(
                "Authentication is OFF (c.R2DService.auth_enabled = False): "
                "ANYONE who can reach %s:%s can build images, see and cancel every build.",
                self.ip,
                self.port,
            )
        else:
            self.init_auth()
        builder_path = BUILDERS.get(self.builder_class, self.builder_class)
        try:
            builder_cls = import_item(builder_path)
        except (ImportError, AttributeError) as e:
            self.exit_with(
                f"c.R2DService.builder_class = {self.builder_class!r}: cannot import it ({e}). "
                f"Use one of {sorted(BUILDERS)} or an importable Builder subclass."
            )
        if not (isinstance(builder_cls, type) and issubclass(builder_cls, Builder)):
            self.exit_with(f"{builder_path} is not a r2dservice Builder subclass.")
        self.builder = builder_cls(parent=self, log=self.log)
        checker = RegistryImageChecker if self.pushes else LocalImageChecker
        self.registry = checker(parent=self, log=self.log)
        if isinstance(self.builder, LocalBuilder) and isinstance(
            self.registry, RegistryImageChecker
        ):
            # One config.json for the registry check and repo2docker's push.
            self.builder.docker_config_path = self.registry.docker_config_path
        # /health's registry check, reused briefly: probes must not each ask the registry
        self.images_check = Shared(self._check_images, self.health_cache_seconds)
        self.resolver = Resolver(parent=self, log=self.log)
        self.build_manager = BuildManager(
            parent=self,
            log=self.log,
            builder=self.builder,
            registry=self.registry,
            resolver=self.resolver,
            image_prefix=self.image_prefix,
        )
        observe_builds(self.build_manager)
        if self.db_url:
            self.store = BuildStore(parent=self, log=self.log, db_url=self.db_url)
            builder_name = self.builder_class if self.builder_class in BUILDERS else builder_path
            self.history = Records(self.build_manager, self.store, builder=builder_name)
            # Replicas sharing the store count each user's builds on all of them.
            self.shared_limits = SharedLimits(
                self.build_manager, self.store, parent=self, log=self.log
            )
        else:
            self.history = MemoryHistory(self.build_manager)
        if isinstance(self.builder, Repo2DockerBuilder):
            # warm rebuilds: a new commit builds with the newest earlier image as cache
            self.builder.previous_images = PreviousImages(
                self.history, self.registry, self.log
            ).find

    def init_auth(self) -> None:
        """JupyterHub authentication, from the JUPYTERHUB_* environment a hub gives
        its services (or c.HubOAuth.* / c.R2DServiceAuth.*); exits naming what is missing."""
        self.authenticator = R2DServiceAuth(parent=self, log=self.log, base_url=self.base_url)
        missing = self.authenticator.missing_settings()
        if missing:
            self.exit_with(
                "JupyterHub authentication is on, but these settings are missing: "
                + ", ".join(missing)
                + ". A hub sets them for a managed service (c.JupyterHub.services entry with "
                "'command'); for an external one ('url' + 'api_token') set them yourself. "
                "To run without a hub on purpose: c.R2DService.auth_enabled = False (--no-auth)."
            )
        try:
            self.log.info("Authentication: %s", self.authenticator.describe())
        except TraitError as e:
            self.exit_with(f"JupyterHub authentication settings are invalid: {e}")
        hub_auth = self.authenticator.hub_auth
        # Launching talks to the hub with the caller's token; without a hub, nothing to launch in.
        self.launcher = Launcher(
            parent=self,
            log=self.log,
            api_url=hub_auth.api_url,
            hub_prefix=hub_auth.hub_prefix,
            service_token=hub_auth.api_token,
            # the resolver comes later; its providers' high_quota_specs decide
            higher_quota=lambda provider, spec: self.resolver.has_higher_quota(provider, spec),
        )

    def routes(self) -> list:
        b = self.base_url
        # An empty spec reaches the handlers, whose parser says what a spec looks like.
        spec = r"(?P<provider>[^/]+)/(?P<spec>.*)"
        auth_routes = []
        if self.authenticator is not None:
            # Where the hub sends browsers back after login (its path, under our prefix).
            callback = urlparse(self.authenticator.hub_auth.oauth_redirect_uri).path
            auth_routes.append((callback, oauth.OAuthCallbackHandler))
        return auth_routes + [
            (rf"{b}", home.HomeHandler),
            (rf"{b}builds", pages.BuildsPageHandler),
            (rf"{b}builds/(?P<build_id>[^/]+)", pages.BuildPageHandler),
            (rf"{b}v2/{spec}", pages.V2Handler),
            (rf"{b}build/{spec}", build.BuildStreamHandler),
            (rf"{b}api/builds", api.BuildsHandler),
            (rf"{b}api/builds/(?P<build_id>[^/]+)", api.BuildHandler),
            (rf"{b}api/builds/(?P<build_id>[^/]+)/cancel", api.CancelHandler),
            (rf"{b}api/builds/(?P<build_id>[^/]+)/events", api.EventsHandler),
            (rf"{b}api/builds/(?P<build_id>[^/]+)/log", api.LogHandler),
            (rf"{b}api/builds/(?P<build_id>[^/]+)/launch", launch.LaunchHandler),
            (rf"{b}api/images/{spec}", api.ImageHandler),
            (rf"{b}api/repoproviders", api.RepoProvidersHandler),
            (rf"{b}health", health.HealthHandler),
            (rf"{b}versions", health.VersionsHandler),
            (rf"{b}metrics", metrics.MetricsHandler),
            (rf"{b}api/openapi\.(?P<fmt>yaml|json)", openapi.OpenAPIHandler),
            (rf"{b}api/.*", api.NotFoundHandler),
        ]

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application(
            self.routes(),
            build_manager=self.build_manager,
            history=self.history,
            base_url=self.base_url,
            keepalive_interval=self.keepalive_interval,
            health_checks=self.health_checks,
            stream_limits=StreamLimits(self.max_streams_per_user),
            stream_idle_timeout=self.stream_idle_timeout,
            builder_info={"class": type(self.builder).__name__},
            authenticator=self.authenticator,
            launcher=self.launcher,
            # Signs the login and XSRF cookies; only used with auth on.
            cookie_secret=self.authenticator.cookie_secret if self.authenticator else None,
            # <prefix>static/: the operator's static_paths first, then the package's.
            static_path=os.path.join(share_dir(), "static"),
            static_url_prefix=f"{self.base_url}static/",
            static_handler_class=pages.StaticHandler,
            static_handler_args={"roots": pages.static_roots(share_dir(), self.static_paths)},
            jinja2_env=pages.jinja_env(
                share_dir(),
                self.template_paths,
                self.template_vars,
                self.static_paths,
                self.base_url,
            ),
            metrics_token=self.metrics_token,
            log_function=self._log_request,
            default_handler_class=base_handlers.NotFoundHandler,
        )

    def _log_request(self, handler) -> None:
        status = handler.get_status()
        level = (
            logging.DEBUG
            if handler.request.path.endswith("/health") and status < 400
            else (logging.INFO if status < 400 else logging.WARNING)
        )
        r = handler.request
        # A git spec in the path may carry credentials, in any %-encoding.
        path = redact(r.path)
        self.log.log(
            level,
            "%d %s %s (%s) %.2fms",
            status,
            r.method,
            path,
            r.remote_ip,
            1000 * r.request_time(),
        )

    async def health_checks(self) -> list[dict]:
        checks = [await self.images_check()]
        if self.store is not None:
            ok = self.store.healthy
            problem = self.store.problem or "the database does not answer"
            # Not critical: images that exist are still served without the records, so
            # a database outage must not take every replica out of a load balancer.
            checks.append(
                {"service": "records", "ok": ok, "critical": False}
                | ({} if ok else {"message": f"build records: {problem}; new builds wait"})
            )
        checks.extend(self.builder.health())
        checks.append(
            {
                "service": "builds",
                "ok": True,
                "running": self.build_manager.running_count,
                "queued": self.build_manager.queue_length,
            }
        )
        return checks

    async def _check_images(self) -> dict:
        try:
            await self.registry.exists(self.image_prefix + "health-check:none")
            self._images_error = ""
            return {"service": "images", "ok": True}
        except RegistryError as e:
            # /health answers anyone: the details (paths) go to the log, once per change.
            if str(e) != self._images_error:
                self.log.warning("The image check fails: %s", e)
            self._images_error = str(e)
            return {"service": "images", "ok": False, "message": e.public}

    def write_config_file(self) -> None:
        path = self.config_file
        if os.path.exists(path):
            self.exit_with(f"{path} exists already; remove it or name another file with -f.")
        with open(path, "w") as f:
            f.write(self.generate_config_file())
        print(f"Wrote {path}")

    async def serve(self) -> None:
        if self.store is not None:
            try:
                await self.store.start()
            except StoreError as e:
                self.exit_with(f"c.R2DService.db_url: {e}")
            await self.history.start()
        await self.build_manager.start()
        if self.store is not None:
            await self.history.settle()
            await self.shared_limits.start()
        self.http_server = HTTPServer(
            self.make_app(),
            xheaders=True,
            max_header_size=self.max_header_size,
            max_body_size=self.max_body_size,
            # tornado's header timeout: the whole of a request's headers, not per byte
            idle_connection_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
        )
        self.http_server.listen(self.port, self.ip, backlog=self.listen_backlog)
        # Everything made so far (modules, config, templates) lives as long as the
        # process: keep it out of the collector's full passes, which otherwise walk it
        # again and again while a crowd of viewers allocates (pauses of 100 ms and more).
        # And collect young objects less often: each viewer's connection is a few hundred
        # objects that live as long as its stream, so the default thresholds (700, 10, 10)
        # make the collector rescan them many times while a crowd arrives. Measured with a
        # crowd of 2,000 viewers: collector time 0.6-1.2 s → 0.1-0.2 s.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.log.info(
            "r2dservice %s listening on http://%s:%d%s",
            __version__,
            self.ip,
            self.port,
            self.base_url,
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Installed explicitly: a hub-managed service may inherit an ignored SIGINT.
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        self.log.info("Shutting down")
        self.http_server.stop()
        await self.build_manager.stop()
        if self.store is not None:
            await self.shared_limits.stop()
            await self.history.stop()
            await self.store.close()
        await self.registry.close()
        await self.resolver.close()
        if self.authenticator is not None:
            await self.authenticator.close()

    def start(self):
        if self.subapp is not None:
            return self.subapp.start()
        if self.generate_config:
            return self.write_config_file()
        asyncio.run(self.serve())


def share_dir() -> str:
    """share/r2dservice (templates, static): the checkout's, else the installed one."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(os.path.dirname(here), "share", "r2dservice")]
    candidates += [
        os.path.join(p, "share", "r2dservice") for p in (sys.prefix, "/usr/local", "/usr")
    ]
    for path in candidates:
        if os.path.isdir(os.path.join(path, "templates")):
            return path
    return candidates[0]


main = R2DService.launch_instance

"""`r2dservice build-pod`: print the build pod the service would create, without a cluster.

    r2dservice build-pod [-f r2dservice_config.py] <provider>/<spec> [--ref SHA] [--user NAME]

Operators check their c.KubernetesBuilder configuration with it (and can pipe the YAML
to `kubectl apply --dry-run=server -f -` or `kubernetes-validate --strict -`). With
--ref nothing leaves this machine; without it, the ref is resolved through the
configured providers (which asks the repository host).
"""

from __future__ import annotations

import asyncio
import sys

import yaml
from traitlets import Unicode
from traitlets.config import Application

from . import naming
from .builders.base import BuildRequest, make_build_request
from .builders.kubernetes import KubernetesBuilder
from .builders.objects import credentials_secret_name, to_dict
from .configfile import load_or_exit
from .spec import redact


class BuildPodApp(Application):
    name = "r2dservice-build-pod"
    description = (
        "Print the Kubernetes build pod manifest (YAML) for a repository, without a cluster."
    )
    examples = """
    r2dservice build-pod -f r2dservice_config.py gh/jupyterhub/zero-to-jupyterhub-k8s/HEAD --ref 0123abc...
    r2dservice build-pod gh/owner/repo/main | kubernetes-validate --strict -
    """

    raise_config_file_errors = True  # as the service: a broken file stops it, loudly
    config_file = Unicode("", help="The r2dservice configuration file to read (-f).").tag(
        config=True
    )
    ref = Unicode(
        "",
        help="The commit to build. Without it, the spec's ref is resolved through the providers.",
    ).tag(config=True)
    user = Unicode("", help="Who asks (the pod's user annotation).").tag(config=True)

    aliases = {
        "f": "BuildPodApp.config_file",
        "config": "BuildPodApp.config_file",
        "ref": "BuildPodApp.ref",
        "user": "BuildPodApp.user",
        "log-level": "Application.log_level",
    }

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            load_or_exit(self, self.config_file)

    def start(self):
        if len(self.extra_args) != 1:
            self.print_help()
            self.exit(2)
        try:
            manifest = asyncio.run(self.manifest(self.extra_args[0]))
        except Exception as e:  # noqa: BLE001 - a command line tool: say it and exit
            print(f"r2dservice build-pod: {e}", file=sys.stderr)
            self.exit(1)
        sys.stdout.write(manifest)

    async def manifest(self, full_spec: str) -> str:
        """The YAML of the pod for `full_spec` ("<provider>/<spec>")."""
        request = await self.build_request(full_spec)
        builder = KubernetesBuilder(config=self.config, log=self.log)
        pod = to_dict(builder.make_pod(request))
        head = f"# The build pod r2dservice would create for {redact(full_spec)}\n# image: {request.image_name}\n"
        if request.credentials:
            head += (
                f"# with the URL's credentials in a Secret {credentials_secret_name(request)} "
                "(made per build, owned by the pod)\n"
            )
        return head + yaml.safe_dump(pod, sort_keys=False)

    async def build_request(self, full_spec: str) -> BuildRequest:
        from .providers.resolver import Resolver
        from .spec import split_credentials, split_spec

        provider, spec = split_spec(full_spec)
        resolver = Resolver(config=self.config, log=self.log)
        try:
            repo_spec = resolver.parse(provider, spec)
            if self.ref:
                repo, repo_url, resolved_ref = (
                    _shown_repo(repo_spec),
                    offline_repo_url(resolver.provider(provider), repo_spec),
                    self.ref,
                )
            else:
                resolved = await resolver.resolve(provider, spec)
                repo, repo_url, resolved_ref = (
                    resolved.repo,
                    resolved.repo_url,
                    resolved.resolved_ref,
                )
        finally:
            await resolver.close()
        builder = KubernetesBuilder(config=self.config, log=self.log)
        prefix = self.config.R2DService.get("image_prefix", _service_default("image_prefix"))
        # the service names a build with credentials in its spec apart (naming.image_name)
        credentialed = bool(split_credentials(repo_url)[1])
        image = naming.image_name(
            prefix, provider, repo, resolved_ref, builder.fingerprint(), credentialed=credentialed
        )
        push = self.config.R2DService.get("use_registry", None)
        # Credentials in a git URL leave it (for a per-build Secret), the spec is redacted.
        return make_build_request(
            image_name=image,
            repo_url=repo_url,
            ref=resolved_ref,
            provider=provider,
            spec=repo_spec.spec,
            # The Kubernetes builder pushes unless the operator turned the registry off.
            push=True if push is None else bool(push),
            user=self.user,
        )


def _service_default(name: str):
    """The service's own default for a setting the config file leaves out."""
    from .app import R2DService

    return R2DService.class_traits()[name].default_value


def _shown_repo(repo_spec) -> str:
    """The repository as the providers name it in image names (git URLs redacted)."""
    if repo_spec.provider == "git":
        from .spec import redact

        return redact(repo_spec.repo, repo_spec.repo)
    return repo_spec.repo


def offline_repo_url(provider, repo_spec) -> str:
    """What repo2docker would clone, without asking the repository host.

    A third-party provider without `repo_url()` cannot say; then --ref can't be used.
    """
    try:
        return provider.repo_url(repo_spec)
    except NotImplementedError:
        raise ValueError(
            f"cannot tell what provider {provider.name!r} clones without resolving; leave out --ref"
        ) from None


main = BuildPodApp.launch_instance

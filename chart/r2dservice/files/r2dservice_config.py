# r2dservice configuration, made by the r2dservice helm chart.
#
# Do not edit it in the cluster: change the chart's values and `helm upgrade`.
#
# The chart renders the values this file needs into values.json, next to this file.
# Below they become r2dservice settings (c.R2DService.*, c.KubernetesBuilder.*, ...);
# then the chart's `config` (settings as a dict) and `extraConfig` (Python snippets, in
# the order of their names) are applied, so both win over what the structured values set.
# Credentials are not in values.json: they reach the pod from the chart's Secret as
# environment variables (JUPYTERHUB_API_TOKEN, R2DSERVICE_COOKIE_SECRET,
# R2DSERVICE_METRICS_TOKEN) or as files (the registry's docker config.json).
import hashlib
import json
import logging
import os

from traitlets.config import Config

c = get_config()  # noqa: F821 (traitlets provides it)
_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, "values.json"), encoding="utf-8") as _f:
    chart_values = json.load(_f)


def get_chart_value(key, default=None):
    """A value of values.json by dotted key ("build.nodeSelector", "custom.myKey")."""
    value = chart_values
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def _set(section, trait, value):
    """Set c.<section>.<trait> unless the chart left the value unset (None)."""
    if value is not None:
        setattr(c[section], trait, value)


# --- the service ---------------------------------------------------------------------
_set("R2DService", "builder_class", chart_values["builder"])
_set("R2DService", "image_prefix", chart_values.get("imagePrefix") or None)
_set("R2DService", "use_registry", chart_values.get("useRegistry"))
_set("R2DService", "auth_enabled", get_chart_value("auth.enabled"))
_set("R2DServiceAuth", "build_scope", get_chart_value("auth.buildScope"))
_set("R2DServiceAuth", "admin_scope", get_chart_value("auth.adminScope"))
_set("Launcher", "enabled", get_chart_value("launch.enabled"))
_set("Launcher", "named_servers", get_chart_value("launch.namedServers"))
_set("Launcher", "per_repo_quota", get_chart_value("launch.perRepoQuota"))
_set("Launcher", "per_repo_quota_higher", get_chart_value("launch.perRepoQuotaHigher"))
_set("BuildManager", "concurrent_build_limit", chart_values.get("concurrentBuildLimit"))
_set("BuildManager", "max_queue_length", chart_values.get("maxQueueLength"))
if chart_values.get("debug"):
    c.Application.log_level = logging.DEBUG
# Build records: a URL from the Secret (it may carry a password), else the chart's sqlite
# file on its volume.
_set("R2DService", "db_url", os.environ.get("R2DSERVICE_DB_URL") or get_chart_value("db.url"))
# Without a cookie secret of its own, one derived from the service's API token: the same
# in every replica, after every restart and every render, and it changes with the token.
if not os.environ.get("R2DSERVICE_COOKIE_SECRET") and os.environ.get("JUPYTERHUB_API_TOKEN"):
    c.R2DServiceAuth.cookie_secret = hashlib.sha256(
        b"r2dservice cookie secret\0" + os.environ["JUPYTERHUB_API_TOKEN"].encode()
    ).hexdigest()
if os.environ.get("R2DSERVICE_METRICS_TOKEN"):
    c.R2DService.metrics_token = os.environ["R2DSERVICE_METRICS_TOKEN"]

# One docker config.json for both the existence check and the push.
_set(
    "RegistryImageChecker",
    "docker_config_path",
    get_chart_value("registry.dockerConfigPath") or None,
)

# --- builds ----------------------------------------------------------------------------
_build = chart_values["build"]

# values key under `build` -> c.KubernetesBuilder trait
_KUBERNETES_BUILDER = {
    "namespace": "namespace",
    "dockerHost": "docker_host",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "affinity": "affinity",
    "resources": "resources",
    "stickyBuilds": "sticky_builds",
    "buildTimeout": "build_timeout",
    "pendingGrace": "pending_grace",
    "maxAge": "max_age",
    "extraLabels": "extra_labels",
    "extraAnnotations": "extra_annotations",
    "extraEnv": "extra_envs",
    "extraVolumes": "extra_volumes",
    "extraVolumeMounts": "extra_volume_mounts",
    "repo2dockerExtraArgs": "repo2docker_extra_args",
    "serviceAccountName": "service_account",
    "podSecurityContext": "pod_security_context",
    "containerSecurityContext": "container_security_context",
    "priorityClassName": "priority_class_name",
}

if chart_values["builder"] == "kubernetes":
    for _key, _trait in _KUBERNETES_BUILDER.items():
        if _build.get(_key) is not None:
            setattr(c.KubernetesBuilder, _trait, _build[_key])
    # Environment values as strings (YAML makes numbers and booleans of some).
    c.KubernetesBuilder.extra_envs = {
        _name: _value
        if isinstance(_value, dict)
        else (str(_value).lower() if isinstance(_value, bool) else str(_value))
        for _name, _value in (_build.get("extraEnv") or {}).items()
    }
    if _build.get("dockerHost") == "":
        # Neither a socket nor DOCKER_HOST (the build image brings its own daemon...).
        c.KubernetesBuilder.docker_host = None
    _image = _build["image"]
    c.KubernetesBuilder.build_image = f"{_image['name']}:{_image['tag']}"
    _set("KubernetesBuilder", "build_image_pull_policy", _image.get("pullPolicy") or None)
    c.KubernetesBuilder.image_pull_secrets = list(_image.get("pullSecrets") or [])
    if _build.get("pushSecret"):
        c.KubernetesBuilder.push_secret = _build["pushSecret"]
        c.KubernetesBuilder.push_secret_key = _build["pushSecretKey"]
    _git = _build.get("gitCredentials") or {}
    if _git.get("existingSecret"):
        c.KubernetesBuilder.git_credentials_secret = _git["existingSecret"]
        _set("KubernetesBuilder", "git_credentials_key", _git.get("key") or None)
else:
    # A repo2docker process in this pod, against the Docker API the chart mounted.
    _set("LocalBuilder", "build_timeout", _build.get("buildTimeout"))
    _set("LocalBuilder", "repo2docker_extra_args", _build.get("repo2dockerExtraArgs"))

# --- pass-through settings, then the operator's own Python -------------------------------
c.merge(Config(chart_values.get("config") or {}))

for _name in sorted(chart_values.get("extraConfig") or {}):
    _code = compile(chart_values["extraConfig"][_name], f"<extraConfig.{_name}>", "exec")
    exec(_code, {"c": c, "get_chart_value": get_chart_value, "chart_values": chart_values})  # noqa: S102

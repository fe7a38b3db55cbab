"""What a build pod's state means to the person waiting for the build: the progress
messages, and how the build ended. Pure: pods are the watch's JSON dicts; no I/O."""

from __future__ import annotations

from .objects import (
    is_finished,
    is_running,
    pod_phase,
    terminated_state,
    termination_message,
    waiting_message,
)


def duration(seconds: float) -> str:
    """'5 minutes', '1 hour', '90 seconds': a limit as a person says it."""
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} hour" + ("s" if seconds != 3600 else "")
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} minute" + ("s" if seconds != 60 else "")
    return f"{seconds} second" + ("s" if seconds != 1 else "")


def is_failed(pod: dict) -> bool:
    """Finished, and not with exit code 0."""
    term = terminated_state(pod) or {}
    return is_finished(pod) and (pod_phase(pod) == "Failed" or term.get("exitCode") != 0)


def succeeded(pod: dict) -> bool:
    """The container exited 0 and Kubernetes does not call the pod Failed."""
    term = terminated_state(pod)
    return term is not None and term.get("exitCode") == 0 and pod_phase(pod) != "Failed"


def state_message(pod: dict, stuck: str, pending_grace: float) -> str:
    """The progress event for the pod's state ('' for none); `stuck` is its stuck_reason()."""
    if stuck:
        return (
            f"Build pod cannot start: {stuck} "
            f"(the build fails if this lasts {duration(pending_grace)})"
        )
    if is_running(pod):
        return "Build pod started"
    state = waiting_message(pod)
    return f"Build pod: {state}" if state else ""


def timed_out(build_timeout: float) -> str:
    return f"The build took longer than {duration(build_timeout)}, the limit for one build.\n"


def not_started(pending_grace: float, why: str) -> str:
    return f"The build pod could not start within {duration(pending_grace)}: {why}\n"


def failure(
    pod: dict,
    deleted: bool,
    *,
    build_timeout: float,
    error: str = "",
    last_line: str = "",
) -> str | None:
    """Why the build of this ended pod failed, or None if it succeeded. `deleted`: the
    pod was deleted (not by us: we delete only after deciding); `error`: repo2docker's
    own account of the failure, if its log gave one."""
    if succeeded(pod):
        return None
    name = pod["metadata"]["name"]
    if deleted:
        return (
            f"The build pod {name} was deleted before the build finished "
            "(by someone else, or its node went away).\n"
        )
    if (pod.get("status") or {}).get("reason") == "DeadlineExceeded":
        return timed_out(build_timeout)
    if (terminated_state(pod) or {}).get("reason") == "OOMKilled":
        return (
            "The build pod ran out of memory (OOMKilled); c.KubernetesBuilder.resources "
            "sets its limit.\n"
        )
    if error:
        return error
    detail = f"; last log line: {last_line.strip()}" if last_line.strip() else ""
    return f"The build failed: {termination_message(pod)}{detail}\n"


def watch_refused(reason: str) -> str:
    """Why a build fails when the API refuses the shared pod watch (`reason`: its
    message, which names the verb and the account)."""
    return (
        "The service can no longer follow build pods: the Kubernetes API refuses to "
        f"watch them ({reason}). Its Role needs list and watch on pods.\n"
    )


def log_refused(reason: str) -> str:
    """The event of a build whose log the API refuses to show (`reason`: its message)."""
    return (
        f"The build log cannot be read: {reason}. The build goes on; its Role needs "
        "get on pods/log.\n"
    )

"""Prometheus metrics, counted per build (not per viewer), with bounded labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

BUILDS = Counter(
    "r2dservice_builds_total",
    "Builds that ended, by how they ended (ready, failed, cancelled).",
    ["status"],
    registry=REGISTRY,
)
BUILD_TIME = Histogram(
    "r2dservice_build_duration_seconds",
    "Time from a build's start to its end, by how it ended.",
    ["status"],
    buckets=(5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf")),
    registry=REGISTRY,
)
QUEUE_TIME = Histogram(
    "r2dservice_build_queue_seconds",
    "Time builds waited in the queue for a slot.",
    buckets=(0.1, 1, 5, 15, 30, 60, 120, 300, 600, float("inf")),
    registry=REGISTRY,
)
REQUESTS = Counter(
    "r2dservice_build_requests_total",
    "Build requests, by answer: cached (image existed), joined (build running), "
    "new (build started), rejected.",
    ["result"],
    registry=REGISTRY,
)
RUNNING = Gauge("r2dservice_builds_running", "Builds running now.", registry=REGISTRY)
QUEUED = Gauge("r2dservice_builds_queued", "Builds waiting for a slot now.", registry=REGISTRY)
VIEWERS = Gauge("r2dservice_event_stream_viewers", "Event streams open now.", registry=REGISTRY)


def observe(manager) -> None:
    """Count the manager's builds: one listener, whatever the number of viewers."""

    def listener(what: str, build) -> None:
        if what == "finished":
            BUILDS.labels(status=build.state).inc()
            if build.started and build.finished:
                BUILD_TIME.labels(status=build.state).observe(build.finished - build.started)
        elif what == "started" and build.started:
            QUEUE_TIME.observe(max(build.started - build.created, 0))
        RUNNING.set(manager.running_count)
        QUEUED.set(manager.queue_length)

    manager.add_listener(listener)

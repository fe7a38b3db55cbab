"""GET <prefix>metrics: Prometheus exposition, optionally behind a token."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from ..metrics import REGISTRY
from .base import BaseHandler


class MetricsHandler(BaseHandler):
    login = None  # reachable without a login

    def get(self):
        token = self.settings.get("metrics_token")
        if token:
            sent = self.request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                raise web.HTTPError(
                    403, "metrics need Authorization: Bearer <c.R2DService.metrics_token>"
                )
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))

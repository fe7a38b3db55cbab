"""GET <prefix>api/openapi.yaml (and .json): the REST API's OpenAPI document.

Served without a login, like health and versions: it says how to authenticate.
The copy served names this service's prefix in `servers`, so that tools pointed at
the URL (Swagger UI, schemathesis, client generators) reach the right paths.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache

import yaml

from .base import BaseHandler

OPENAPI_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.yaml"
)


@lru_cache(maxsize=1)
def load_openapi() -> dict:
    """The document as installed with the package (r2dservice/openapi.yaml)."""
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def openapi_for(base_url: str, auth: bool = True) -> dict:
    """The document with `servers` set to this service's prefix; without auth, without
    `security` (clients and fuzzers would otherwise send credentials nobody checks, and
    read that they need some)."""
    doc = copy.deepcopy(load_openapi())
    doc["servers"] = [{"url": base_url.rstrip("/") or "/", "description": "this service"}]
    if not auth:
        doc.pop("security", None)
        doc.get("components", {}).pop("securitySchemes", None)
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
    return doc


class OpenAPIHandler(BaseHandler):
    """Route: (rf"{b}api/openapi\\.(?P<fmt>yaml|json)", openapi.OpenAPIHandler)."""

    login = None  # reachable without a login

    def get_current_user(self):
        return None

    def get(self, fmt: str = "yaml"):
        doc = openapi_for(self.settings.get("base_url", "/"), auth=self.authenticator is not None)
        self.set_header("Cache-Control", "no-cache")
        if fmt == "json":
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(doc, indent=1))
        else:
            self.set_header("Content-Type", "application/yaml; charset=utf-8")
            self.finish(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))

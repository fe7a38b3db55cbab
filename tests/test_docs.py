"""The documentation builds with warnings as errors, and its configuration reference
(generated from the code at build time) lists every setting."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.support.service import REPO

DOCS = os.path.join(REPO, "docs")
# module -> the distribution that brings it; all of them are in the `docs` and `test` extras
DOCS_REQUIREMENTS = {
    "sphinx": "sphinx",
    "myst_parser": "myst-parser",
    "pydata_sphinx_theme": "pydata-sphinx-theme",
    "sphinxcontrib.openapi": "sphinxcontrib-openapi",
}


def require_docs_tools() -> None:
    missing = []
    for module, dist in DOCS_REQUIREMENTS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            missing.append(dist)
    if missing:
        pytest.fail(
            f"the documentation tools are not installed ({', '.join(missing)}): "
            "pip install -e '.[docs]' (the test extra has them too)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    require_docs_tools()
    out = tmp_path_factory.mktemp("docs-html")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-d",
            str(out / ".doctrees"),
            DOCS,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    if proc.returncode != 0:
        problems = [
            line
            for line in (proc.stderr + proc.stdout).splitlines()
            if "WARNING" in line or "ERROR" in line or "Exception" in line
        ]
        pytest.fail(
            "sphinx-build -W failed (warnings are errors):\n"
            + "\n".join(problems or (proc.stderr + proc.stdout).splitlines()[-40:]),
            pytrace=False,
        )
    return out


def config_reference() -> str:
    with open(os.path.join(DOCS, "reference", "config.md"), encoding="utf-8") as f:
        return f.read()


def test_docs_build_without_warnings(built_docs):
    for page in (
        "index",
        "install",
        "chart",
        "configuration",
        "providers",
        "auth",
        "kubernetes",
        "event-stream",
        "rest-api",
        "architecture",
        "development",
        "metrics",
        "reference/config",
    ):
        assert (built_docs / f"{page}.html").exists(), page


def test_config_reference_lists_every_setting(built_docs):
    from r2dservice.app import configurable_classes

    text = config_reference()
    for setting in ("c.R2DService.image_prefix", "c.BuildManager.concurrent_build_limit"):
        assert f"### `{setting}`" in text, setting
    html = (built_docs / "reference" / "config.html").read_text()
    assert "c.R2DService.image_prefix" in html and "c.BuildManager.concurrent_build_limit" in html
    missing = []
    for cls in configurable_classes():
        for name in cls.class_traits(config=True):
            owner = next(k for k in cls.__mro__ if name in vars(k))
            # inherited settings are listed under the documented class that defines them
            shown_as = cls if f"## {owner.__name__}\n" not in text else owner
            if f"### `c.{shown_as.__name__}.{name}`" not in text:
                missing.append(f"c.{cls.__name__}.{name}")
    assert not missing, f"settings missing from the configuration reference: {missing}"


def test_config_reference_shows_type_default_and_help(built_docs):
    text = config_reference()
    section = text.split("### `c.BuildManager.concurrent_build_limit`", 1)[1].split("\n### ", 1)[0]
    assert "- Type: `Int`" in section
    assert "- Default: `4`" in section
    assert "queue" in section  # the help text


def test_rest_api_page_renders_every_route(built_docs):
    import yaml

    with open(os.path.join(REPO, "r2dservice", "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    html = (built_docs / "rest-api.html").read_text()
    for path, item in doc["paths"].items():
        for method in item:
            if method in ("get", "post", "head"):
                anchor = f"{method}-" + re.sub(r"[{}]", "", path).replace("/", "-")
                assert f'id="{anchor}"' in html, (method, path, anchor)


def test_docs_name_no_registry_but_the_local_one():
    """Image names in the docs use 127.0.0.1:5000, never another registry host."""
    for name in sorted(os.listdir(DOCS)):
        if not name.endswith((".md", ".py")):
            continue
        with open(os.path.join(DOCS, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"([\w.-]+(?::\d+)?)/[\w./<>-]*r2d-", text):
            host = m.group(1)
            if "." in host or ":" in host:
                assert host == "127.0.0.1:5000", f"{name}: {m.group(0)}"


def test_providers_page_has_a_link_for_every_provider():
    from r2dservice.providers import Resolver

    with open(os.path.join(DOCS, "providers.md"), encoding="utf-8") as f:
        text = f.read()
    for entry in Resolver().describe():
        assert f"| `{entry['id']}` |" in text, entry["id"]
        assert f"build/{entry['id']}/" in text or entry["id"] in ("gl", "git", "gist"), entry["id"]

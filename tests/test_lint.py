"""The repository's own habits, enforced by the test command (and so by CI):
ruff's lint rules and its formatting, as configured in pyproject.toml; the same
checks .pre-commit-config.yaml runs before a commit."""

import ast
import os
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ruff(*args):
    exe = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    assert exe, "ruff is not installed: pip install -e '.[test]'"
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", "--diff", ".")])
def test_ruff(args):
    r = ruff(*args)
    assert r.returncode == 0, f"ruff {' '.join(args)}:\n{r.stdout[-20000:]}\n{r.stderr[-5000:]}"


def test_pre_commit_runs_the_same_ruff():
    with open(os.path.join(REPO, ".pre-commit-config.yaml")) as f:
        config = yaml.safe_load(f)
    entries = {h["id"]: h["entry"] for repo in config["repos"] for h in repo["hooks"]}
    assert entries == {"ruff-check": "ruff check --fix", "ruff-format": "ruff format"}


def test_one_trait_style():
    """Traits say `.tag(config=True)`, never `config=True` in the constructor."""
    offenders = []
    for root, _, files in os.walk(os.path.join(REPO, "r2dservice")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                is_tag = isinstance(node.func, ast.Attribute) and node.func.attr == "tag"
                if not is_tag and any(
                    kw.arg == "config"
                    and isinstance(kw.value, ast.Constant)
                    and kw.value.value is True
                    for kw in node.keywords
                ):
                    offenders.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_timeouts_are_caught_as_python_3_10_raises_them():
    """setup.py allows Python 3.10, where asyncio (and aiohttp) raise asyncio.TimeoutError,
    which is not the builtin TimeoutError before 3.11: an `except` that names the builtin
    must name asyncio's too (ruff's UP041 would merge them: pyproject targets py310)."""
    offenders = []
    for root, _, files in os.walk(os.path.join(REPO, "r2dservice")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if not isinstance(node, ast.ExceptHandler) or node.type is None:
                    continue
                caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                names = {ast.unparse(c) for c in caught}
                if "TimeoutError" in names and "asyncio.TimeoutError" not in names:
                    offenders.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert not offenders, offenders

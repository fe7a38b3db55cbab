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


def module_imports(path: str, package: str) -> set[str]:
    """The r2dservice modules a module imports when it is loaded: its top-level imports
    (imports inside functions run later, on purpose, and TYPE_CHECKING ones never)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("r2dservice")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("r2dservice"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def test_no_import_cycles():
    """The one-way flow of the design: no module imports, when loaded, one that imports
    it back (a cycle breaks as soon as someone imports the other one first)."""
    root = os.path.join(REPO, "r2dservice")
    modules = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), REPO)[:-3].replace(os.sep, ".")
                is_pkg = rel.endswith(".__init__")
                mod = rel.removesuffix(".__init__")
                modules[mod] = (
                    os.path.join(folder, name),
                    mod if is_pkg else mod.rpartition(".")[0],
                )
    graph = {
        mod: {m for m in module_imports(path, pkg) if m in modules and m != mod}
        for mod, (path, pkg) in modules.items()
    }
    cycles, state = [], {}

    def visit(mod, stack):
        state[mod] = "open"
        stack.append(mod)
        for dep in sorted(graph[mod]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)

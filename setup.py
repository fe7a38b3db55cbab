"""r2dservice: repo2docker builds as a JupyterHub service."""

import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))


def data_files():
    """Install share/r2dservice/ under <prefix>/share/r2dservice/, as JupyterHub does."""
    out = []
    share = os.path.join("share", "r2dservice")
    for root, dirs, files in os.walk(share):
        if root == share:
            # js/ is npm's working folder (dev/build-static.sh copies what pages need
            # into static/vendor/): its node_modules must not be installed.
            dirs[:] = [d for d in dirs if d != "js"]
        if files:
            out.append((root, [os.path.join(root, f) for f in files]))
    return out


version_ns = {}
with open(os.path.join(here, "r2dservice", "_version.py")) as f:
    exec(f.read(), version_ns)

setup(
    name="r2dservice",
    version=version_ns["__version__"],
    description="Build container images from repositories with repo2docker, as a JupyterHub service",
    long_description=open(os.path.join(here, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["r2dservice", "r2dservice.*"]),
    include_package_data=True,
    # the build store's Alembic revisions run from the installed package (no alembic.ini)
    package_data={"r2dservice": ["*.yaml", "migrations/*.mako", "migrations/*.md"]},
    data_files=data_files(),
    install_requires=[
        "tornado>=6.2",
        "traitlets>=5.9",
        "aiohttp>=3.9",
        "jupyterhub>=4.1",
        "jupyter-repo2docker>=2025.8",
        "escapism>=1.0",
        "sqlalchemy>=2",
        "alembic>=1.13",
        # PostgreSQL for build records (c.R2DService.db_url = "postgresql://...")
        "psycopg[binary]>=3.1",
        "prometheus_client>=0.17",
        "kubernetes_asyncio>=29",
        "pyyaml",
        "jinja2",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.23",
            "pytest-timeout>=2.2",
            "kubernetes-validate",
            # tests/fakes/kubeauth.py: the stand-in cluster's CA and service-account tokens
            "cryptography",
            "bcrypt",
            "playwright",
            "openapi-spec-validator>=0.7",
            "jsonschema>=4.18",
            "hypothesis>=6",
            "schemathesis>=4.32,<5",
            # tests/test_spawner.py: the spawner helper with the spawners hubs use
            "dockerspawner>=13",
            "jupyterhub-kubespawner>=7",
            # tests/test_lint.py: one ruff for everyone, so format checks agree
            "ruff==0.17.6",
            # tests/test_docs.py builds the docs: the docs extra, repeated
            "sphinx>=7.2",
            "myst-parser>=3",
            "pydata-sphinx-theme>=0.15",
            "sphinxcontrib-openapi>=0.8",
        ],
        "dev": ["pre-commit>=3"],
        "docs": [
            "sphinx>=7.2",
            "myst-parser>=3",
            "pydata-sphinx-theme>=0.15",
            "sphinxcontrib-openapi>=0.8",
        ],
    },
    entry_points={
        "console_scripts": ["r2dservice = r2dservice.app:main"],
    },
)

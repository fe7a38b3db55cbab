"""r2dservice: repo2docker builds as a JupyterHub service."""

from ._version import __version__

__all__ = ["__version__"]

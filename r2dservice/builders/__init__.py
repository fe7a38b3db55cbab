"""Builders turn a BuildRequest into events. They know nothing about HTTP."""

from .base import Builder, BuildFailed, BuildRequest

__all__ = ["Builder", "BuildFailed", "BuildRequest"]

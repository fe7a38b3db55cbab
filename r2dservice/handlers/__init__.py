"""Thin tornado handlers: they parse, check permissions, and call the BuildManager."""

"""Fake servers and repositories for tests: forge.py (GitHub/GitLab APIs), gitserver.py (git)."""

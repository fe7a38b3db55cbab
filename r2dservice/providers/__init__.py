"""Repository providers: resolve a spec's ref to an immutable commit."""

"""Parse and validate "<provider>/<spec>" strings. Pure: no I/O.

(Placeholder interface: the full parser for gh, gl, git and gist lands with the providers.)
"""

"""tornado's HTTPServer, answering 431 where tornado drops the connection.

A request whose line and headers do not end within max_header_size bytes (64 KiB by
default: a long git spec in a URL can get there) makes tornado's stream close without
a word; the client sees a reset and cannot tell why. This server writes a 431 first.
"""

from __future__ import annotations

import json
import socket

from tornado import httpserver
from tornado.iostream import IOStream, UnsatisfiableReadError

# What tornado's HTTP/1 connection reads the request line and headers up to.
HEADERS_END = b"\r?\n\r?\n"


def too_large_response(limit: int) -> bytes:
    body = json.dumps(
        {
            "status": 431,
            "message": f"The request line and headers are longer than {limit} bytes; "
            "send a shorter URL (or fewer, shorter headers).",
        }
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def answer_too_large(sock: socket.socket, limit: int) -> None:
    """Best effort, on the raw socket (tornado closes the stream right after): the
    answer, then what the client already sent is read away, so that closing does not
    reset the connection before the client reads the answer."""
    try:
        sock.send(too_large_response(limit))
        for _ in range(64):
            if not sock.recv(65536, socket.MSG_DONTWAIT):
                break
    except OSError:
        pass


class HTTPServer(httpserver.HTTPServer):
    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        limit = self.conn_params.max_header_size
        check = stream._check_max_bytes
        answered = False

        def check_max_bytes(delimiter, size: int) -> None:
            nonlocal answered
            try:
                check(delimiter, size)
            except UnsatisfiableReadError:
                # Only the headers' read (a chunk-size line past its limit is not this),
                # and once: tornado may check again before it closes.
                if not answered and getattr(delimiter, "pattern", None) == HEADERS_END:
                    answered = True
                    answer_too_large(stream.socket, limit)
                raise

        # tornado has no hook for it: the stream's own check, wrapped.
        stream._check_max_bytes = check_max_bytes  # type: ignore[method-assign]
        super().handle_stream(stream, address)

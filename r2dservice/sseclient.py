"""Reading Server-Sent Events: chunks of bytes in, (id, data) per event out. Pure, so that
the hub-side spawner helper and the service's hub client share it without dependencies."""

from __future__ import annotations


class SSEParser:
    """Feed it the bytes of an event stream as they arrive; it returns whole events."""

    def __init__(self):
        self.buffer = b""
        self.event_id = ""
        self.data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self.buffer += chunk
        out = []
        while True:
            nl = self.buffer.find(b"\n")
            if nl < 0:
                break
            line = self.buffer[:nl].rstrip(b"\r").decode("utf-8", errors="replace")
            self.buffer = self.buffer[nl + 1 :]
            if not line:
                if self.data:
                    out.append((self.event_id, "\n".join(self.data)))
                self.data = []
                continue
            if line.startswith(":"):  # a comment: keepalive
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                self.event_id = value
            elif field == "data":
                self.data.append(value)
        return out

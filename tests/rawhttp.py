"""Raw-socket HTTP for the limit tests: what a hostile or broken client sends, byte by byte."""

from __future__ import annotations

import socket
import time


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int | None, bytes, float]:
    """(status or None if closed without one, everything read, seconds until the server closed)."""
    started, data = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else None
    return status, data, time.monotonic() - started


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int | None, bytes, float]:
    """Send `raw` (tolerating a server that stops reading) and read until the server closes."""
    with connect(port, timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock)


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""

"""What a server command does before it listens: migrate, check its port, settle its public URL."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

from ccgate.ops import OperationError

WILDCARDS = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443}


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """How uvicorn runs every ccgate server (serve, demo): the HTTP protocol with ccgate's limits on
    request heads, bodies and connections, and no trust in forwarded headers (CCGATE_TRUSTED_PROXIES
    says whose are believed)."""
    from ccgate.http.server_limits import LimitedHttpToolsProtocol

    return {"host": host, "port": port, "loop": "uvloop", "http": LimitedHttpToolsProtocol, "lifespan": "on",
            "log_level": "warning", "access_log": False, "server_header": False, "proxy_headers": False,
            "limit_concurrency": LimitedHttpToolsProtocol.limits.max_connections}


def migrate_in_child() -> None:
    """Bring the database to the newest schema in a child process, so that a server never imports
    Alembic (some 10 MB it would keep for its whole life); its progress lines stay quiet."""
    done = subprocess.run([sys.executable, "-m", "ccgate", "migrate", "--quiet"], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OperationError("the database could not be migrated (see the errors above)")


def check_port_free(host: str, port: int) -> None:
    """Refuse, before claiming to listen, a port some other process holds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OperationError(f"cannot listen on {host}:{port}: {error.strerror} "
                                 f"(is another server running there? choose another --port)") from None


def listen_url(host: str, port: int) -> str:
    """The address clients on this machine call for a server listening on host:port."""
    shown = "127.0.0.1" if host in WILDCARDS else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url_mismatch(public_url: str, host: str, port: int) -> bool:
    """Whether `public_url` points elsewhere than a server listening on host:port."""
    parts = urlsplit(public_url)
    public_port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    public_host = parts.hostname or ""
    same_host = (host in WILDCARDS or public_host == host or (_is_loopback(public_host) and _is_loopback(host)))
    return public_port != port or not same_host


def settle_public_url(host: str, port: int) -> str | None:
    """Make CCGATE_PUBLIC_URL follow --host/--port unless it is set; when set and pointing elsewhere,
    the warning to print (fine behind a reverse proxy, wrong otherwise)."""
    given = os.environ.get("CCGATE_PUBLIC_URL")
    if not given:
        os.environ["CCGATE_PUBLIC_URL"] = listen_url(host, port)  # read by Settings, in this process and its workers
        return None
    if public_url_mismatch(given, host, port):
        return (f"ccgate: warning: CCGATE_PUBLIC_URL is {given}, but this server listens on {listen_url(host, port)}; "
                "/docs and the dashboard tell users to call the former (right only behind a reverse proxy)")
    return None

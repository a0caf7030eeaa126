"""The `edge` host's HAProxy configuration: what a real deployment puts in front of its API
hosts, and what `docs/deploy.md` shows.

- Every API host is health-checked on `/readyz` once a second; two failures take it out, two
  successes bring it back. A host whose process died is out within about two seconds, and a
  request HAProxy could not even connect it to is sent to the other host (`retry-on
  conn-failure`: nothing reached the dead host, so nothing is done twice).
- When no API host is ready (Temporal or the database unreachable for all of them), HAProxy
  does not answer with its own page: it sends requests to any API host that is alive (a TCP
  check), so people get Reclaim's own 503, in their language, with `Retry-After` and the
  reason `/readyz` gives, rather than a proxy's error.

The same function writes `deploy/haproxy/haproxy.cfg`, the `edge` of `docker-compose.yml`
(`tests/test_compose.py` checks the file equals it): there the API hosts are the replicas of
one service, found by Docker's DNS (`Replicas`), and there is no stats socket.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path

CHECK_INTERVAL_S = 1
FALL, RISE = 2, 2


@dataclass(frozen=True)
class Replicas:
    """`count` API hosts behind one DNS name (`service:port`), asked of `nameserver` (Docker's
    embedded DNS, `127.0.0.11:53`, answers a service's name with every replica's address)."""

    service: str
    port: int
    count: int
    nameserver: str


def haproxy_config(
    *,
    bind: str,
    servers: dict[str, str] | Replicas,
    host_header: str,
    stats_socket: Path | None = None,
) -> str:
    """HAProxy's configuration listening on `bind` (`address:port`), balancing over `servers`
    (name: `host:port`, or the replicas of one service); `host_header` is the name the health
    checks ask for; `stats_socket`, if any, answers `show stat` (which servers are up) to root
    on this machine."""
    if isinstance(servers, Replicas):
        # One slot per replica, filled and refilled from the DNS answer (a recreated replica
        # has a new address); no address at start, so HAProxy starts before the replicas do.
        lines = (
            f"    server-template {servers.service} {servers.count}"
            f" {servers.service}:{servers.port} check resolvers dns init-addr none"
        )
        resolvers = f"""
# Where the replicas are: asked again every second (`timeout resolve`).
resolvers dns
    nameserver dns {servers.nameserver}
"""
    else:
        lines = "\n".join(f"    server {name} {where} check" for name, where in servers.items())
        resolvers = ""
    stats = f"\n    stats socket {stats_socket} mode 600 level user" if stats_socket else ""
    return f"""\
global
    maxconn 4096
    log stdout format raw local0 notice{stats}
{resolvers}
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    retries 2
    option redispatch 1
    retry-on conn-failure
    default-server inter {CHECK_INTERVAL_S}s fall {FALL} rise {RISE}

frontend web
    bind {bind}
    option forwardfor
    use_backend api if {{ nbsrv(api) gt 0 }}
    default_backend api_alive

# The API hosts that are ready: a worker polls, Temporal, the database and the directory answer.
backend api
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host {host_header}
    http-check expect status 200
{lines}

# When none is ready: the API hosts that are alive, which answer 503 with Retry-After and why.
backend api_alive
    balance roundrobin
{lines}
"""


def server_states(stats_socket: Path) -> dict[str, str]:
    """`backend/server`: HAProxy's state of each API host ("UP", "DOWN", "UP 1/2", ...)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    return {
        f"{row['pxname']}/{row['svname']}": row["status"]
        for row in csv.DictReader(io.StringIO(text))
        if row["svname"] not in ("FRONTEND", "BACKEND")
    }

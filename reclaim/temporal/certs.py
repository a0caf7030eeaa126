"""Certificates for mTLS between Reclaim (and the Web UI) and a self-hosted Temporal frontend:
a CA of the deployment's own, a server certificate for the frontend's names, and one client
certificate per client. `reclaim temporal certs --out DIR` writes them (docs/deploy.md,
"Temporal's front door").

Every private key is written 0600 from the start (never readable by others, not even for a
moment), and no file is overwritten: a CA key replaced by mistake would orphan every
certificate it signed.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 5 * 365
# A minute's grace for clocks a little behind this machine's.
_BACKDATE = timedelta(minutes=1)


class CertsExist(Exception):
    """A file the command would write is there already."""


@dataclass(frozen=True)
class Written:
    ca: Path
    server: Path
    clients: dict[str, Path]  # the client's name → its certificate
    files: list[Path]


def write_certs(
    out: Path,
    *,
    dns_names: list[str],
    ip_addresses: list[str] | None = None,
    clients: list[str],
    days: int = 365,
    now: datetime | None = None,
) -> Written:
    """Write `ca.pem`/`ca.key`, `server.pem`/`server.key` (for `dns_names` and `ip_addresses`)
    and `<client>.pem`/`<client>.key` for each of `clients` into `out`."""
    if not dns_names:
        raise ValueError("the server certificate needs at least one DNS name")
    if not clients:
        raise ValueError("at least one client certificate")
    ips = [ipaddress.ip_address(ip) for ip in ip_addresses or []]
    names = ["ca", "server", *clients]
    if len(set(names)) != len(names):
        raise ValueError(
            f"client names must differ from each other and from ca and server: {names}"
        )
    targets = [out / f"{name}.{ext}" for name in names for ext in ("pem", "key")]
    present = [str(path) for path in targets if path.exists()]
    if present:
        raise CertsExist(f"would overwrite {', '.join(present)}: move them away first")
    out.mkdir(parents=True, exist_ok=True)
    start = (now or datetime.now(UTC)) - _BACKDATE

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Reclaim Temporal CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), start, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(out, "ca", ca, ca_key)

    def leaf(
        stem: str, name: str, san: list[x509.GeneralName], usages: list[x509.ObjectIdentifier]
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(_name(name), ca_name, key.public_key(), start, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        _write(out, stem, builder.sign(ca_key, hashes.SHA256()), key)

    # The server's certificate is also its client's, between its own services (internode).
    leaf(
        "server",
        dns_names[0],
        [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ip) for ip in ips],
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    for client in clients:
        leaf(client, client, [], [ExtendedKeyUsageOID.CLIENT_AUTH])
    return Written(
        ca=out / "ca.pem",
        server=out / "server.pem",
        clients={client: out / f"{client}.pem" for client in clients},
        files=targets,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Reclaim"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    start: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(
    out: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (out / f"{stem}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 (O_EXCL: never through a file or link someone put there first).
    fd = os.open(out / f"{stem}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, pem)
    finally:
        os.close(fd)

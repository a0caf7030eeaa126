"""A real OpenLDAP server for one test: Debian's `slapd`, configured in a temporary directory
(mdb backend, the ppolicy overlay with a history of 5 and a lockout after 3 failed binds),
loaded with `slapadd`, listening on a free port; stopped and started again at will.

The tests bind as `cn=admin` (the rootdn, which ppolicy does not constrain) to look and to
arrange; Reclaim binds as `cn=reclaim,ou=services`, an ordinary entry whose ACLs let it read
the users and write their passwords, mail and phone, so the server's password policy applies
to what it does, as it would in production.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_REPLACE, Connection, Server

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret-for-tests"
SERVICE_DN = f"cn=reclaim,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret-for-tests"
STRICT_POLICY = f"cn=strict,ou=policies,{SUFFIX}"
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")


def slapd_missing() -> str | None:
    """Why the LDAP tests cannot run here, in one line (None: they can)."""
    for tool in ("slapd", "slapadd"):
        if _tool(tool) is None:
            return f"{tool} is not installed (apt-get install slapd ldap-utils)"
    if not (SCHEMAS / "inetorgperson.schema").exists() or not (MODULES / "ppolicy.so").exists():
        return "slapd's schemas or its ppolicy module are missing"
    return None


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None
    )


def ssha(password: str) -> str:
    """userPassword as slappasswd writes it by default."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324  ({SSHA}, as slapd)
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
modulepath {modules}
moduleload back_mdb
moduleload ppolicy
pidfile {root}/slapd.pid
argsfile {root}/slapd.args

database mdb
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_password}
directory {root}/data
maxsize 16777216

overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
ppolicy_use_lockout

{history_acl}access to attrs=userPassword
    by dn.exact="{service}" write
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{service}" write
    by * read
"""

BASE_ENTRIES = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: ou=services,{suffix}
objectClass: organizationalUnit
ou: services

dn: ou=policies,{suffix}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{suffix}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdInHistory: 5
pwdCheckQuality: 1
pwdMinLength: 8
pwdLockout: TRUE
pwdMaxFailure: 3

dn: {strict}
objectClass: device
objectClass: pwdPolicy
cn: strict
pwdAttribute: userPassword
pwdInHistory: 5
pwdCheckQuality: 2
pwdMinLength: 40

dn: {service}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: reclaim
userPassword: {service_password}
"""


class Slapd:
    """One slapd of a test's own. `add_user` before `start` (slapadd), `admin()` after."""

    def __init__(self, root: Path, *, history_readable: bool = True, tls: bool = False) -> None:
        """`history_readable=False`: the service account cannot read `pwdHistory` (only the
        server's own policy knows the previous passwords). `tls`: a certificate for
        127.0.0.1 signed by a CA of the test's own (`ca_file`), StartTLS on `url` and
        `ldaps://` on `tls_url`."""
        self.root = root
        self.port = _free_port()
        self.tls_port = _free_port() if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        self._users: list[str] = []
        (root / "data").mkdir(parents=True)
        values = {
            "schemas": SCHEMAS,
            "modules": MODULES,
            "root": root,
            "suffix": SUFFIX,
            "admin": ADMIN_DN,
            "admin_password": ADMIN_PASSWORD,
            "service": SERVICE_DN,
            "service_password": ssha(SERVICE_PASSWORD),
            "strict": STRICT_POLICY,
            "history_acl": "" if history_readable else "access to attrs=pwdHistory by * none\n",
        }
        self.config = root / "slapd.conf"
        config = CONFIG.format(**values)
        if tls:
            cert, key = _certificates(root)
            config = (
                f"TLSCACertificateFile {self.ca_file}\nTLSCertificateFile {cert}\n"
                f"TLSCertificateKeyFile {key}\n" + config
            )
        self.config.write_text(config)
        self._base = BASE_ENTRIES.format(**values)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    def reclaim_settings(self) -> dict[str, Any]:
        """The RECLAIM_LDAP_* settings of a Reclaim on this server."""
        return {
            "directory": "ldap",
            "ldap_url": self.url,
            "ldap_bind_dn": SERVICE_DN,
            "ldap_bind_password": SERVICE_PASSWORD,
            "ldap_user_base": PEOPLE,
            "ldap_timeout": 2.0,
        }

    def add_user(
        self,
        uid: str,
        password: str,
        *,
        mail: str | None = None,
        mobile: str | None = None,
        policy: str | None = None,
    ) -> str:
        """An inetOrgPerson under ou=people (loaded at `start`); returns its DN."""
        dn = f"uid={uid},{PEOPLE}"
        lines = [
            f"dn: {dn}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: {uid.title()}",
            f"sn: {uid.title()}",
            f"userPassword: {ssha(password)}",
        ]
        if mail:
            lines.append(f"mail: {mail}")
        if mobile:
            lines.append(f"mobile: {mobile}")
        if policy:
            lines.append(f"pwdPolicySubentry: {policy}")
        self._users.append("\n".join(lines) + "\n")
        return dn

    def start(self) -> None:
        """Load the entries (first start only) and serve; returns once it answers."""
        if not (self.root / "loaded").exists():
            ldif = self.root / "entries.ldif"
            ldif.write_text(self._base + "\n" + "\n".join(self._users))
            subprocess.run(
                [_tool("slapadd") or "slapadd", "-f", str(self.config), "-l", str(ldif)],
                check=True,
                capture_output=True,
            )
            (self.root / "loaded").touch()
        with (self.root / "slapd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    _tool("slapd") or "slapd",
                    "-f",
                    str(self.config),
                    "-h",
                    f"{self.url}/" + (f" {self.tls_url}/" if self.tls_port else ""),
                    "-d",
                    "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    log_text = (self.root / "slapd.log").read_text()
                    raise RuntimeError(f"slapd exited: {log_text}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.process = None

    def admin(self) -> Connection:
        return Connection(
            Server(self.url, connect_timeout=5), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True
        )

    def read(self, dn: str, *attributes: str) -> dict[str, list[str]]:
        with self.admin() as connection:
            connection.search(dn, "(objectClass=*)", "BASE", attributes=list(attributes))
            [entry] = connection.response
            return {
                name: [v.decode() for v in values]
                for name, values in entry["raw_attributes"].items()
                if values
            }

    def replace(self, dn: str, **values: list[str]) -> None:
        with self.admin() as connection:
            assert connection.modify(
                dn, {name: [(MODIFY_REPLACE, v)] for name, v in values.items()}
            ), connection.result

    def binds(self, dn: str, password: str) -> bool:
        connection = Connection(Server(self.url, connect_timeout=5), dn, password)
        try:
            return bool(connection.bind())
        finally:
            connection.unbind()


def _certificates(root: Path) -> tuple[Path, Path]:
    """A CA (written to root/ca.pem) and a server certificate for 127.0.0.1 it signed."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Reclaim tests CA"))
        .issuer_name(name("Reclaim tests CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = root / "server.pem", root / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file

"""Certificates for the sandbox's TLS: a certificate authority, server certificates (with the subject alternative
names you choose, so a hostname mismatch can be tested; expired ones too) and client certificates, written as
PEM files. `--tls self-signed` uses `self_signed` to give the Milvus simulator its certificate.

    ca = CertificateAuthority.create(directory)
    server = ca.issue(directory, "server", hosts=("localhost", "127.0.0.1"))
    client = ca.issue(directory, "client", client=True)
    ServerTls(cert=server.cert, key=server.key, client_ca=ca.cert)   # mutual TLS for MilvusSimulator
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("localhost", "127.0.0.1")
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerTls:
    """What a TLS server needs: its certificate and key, and the CA its clients' certificates must come from
    (mutual TLS, a client certificate required) or None (one-way TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, directory: Path, name: str = "ca",
               common_name: str = "milvus-rg-sandbox CA") -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cls(cert_path, key_path, certificate, key)

    def issue(self, directory: Path, name: str, *, hosts: Iterable[str] = LOCAL_HOSTS, client: bool = False,
              expired: bool = False) -> CertificateFiles:
        """A leaf certificate `<name>.pem` / `<name>.key` signed by this CA: for a server (its subject
        alternative names are `hosts`, IPs or DNS names) or a client (`client=True`); `expired=True` gives one
        that expired yesterday."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        not_before, not_after = ((now - datetime.timedelta(days=2), now - datetime.timedelta(days=1)) if expired
                                 else (now - datetime.timedelta(minutes=5), now + VALIDITY))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                           critical=False)
        )
        if not client:
            builder = builder.add_extension(_san(hosts), critical=False)
        certificate = builder.sign(self.private_key, hashes.SHA256())
        files = CertificateFiles(directory / f"{name}.pem", directory / f"{name}.key")
        files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, files.key)
        return files


def self_signed(directory: Path, host: str, mutual: bool = False) -> ServerTls:
    """`--tls self-signed[-mutual]`: a CA (`ca.pem`), a server certificate for `host`, localhost and 127.0.0.1
    (`server.pem`, `server.key`) and a client certificate (`client.pem`, `client.key`) in `directory`; the
    server requires the client certificate when `mutual`."""
    ca = CertificateAuthority.create(directory)
    server = ca.issue(directory, "server", hosts=dict.fromkeys((host, *LOCAL_HOSTS)))
    ca.issue(directory, "client", client=True)
    return ServerTls(server.cert, server.key, ca.cert if mutual else None)

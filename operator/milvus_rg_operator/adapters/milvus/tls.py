"""TLS to Milvus: the pool's certificates as pymilvus and aiohttp take them, checked before use, and a failed
connection told apart (a wrong CA, an expired or mismatched certificate, a refused client certificate) instead of
"unreachable".

pymilvus reads certificates from files only (`server_pem_path`, `ca_pem_path`, `client_pem_path`,
`client_key_path`, read again on every reconnect), so `TlsFiles` writes them into a private directory (0700, files
0600; the chart mounts /tmp as an in-memory emptyDir) that lives as long as the gateway. When a call fails,
pymilvus says only "Fail connecting to server" (code 2): `diagnose` then makes a handshake of its own with the same
certificates and reads the reason from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from milvus_rg_operator.adapters.milvus.errors import MilvusTlsError

CA_FIELD = "spec.milvus.tls.caSecretRef"
CLIENT_FIELD = "spec.milvus.tls.clientCertSecretRef"
SERVER_NAME_FIELD = "spec.milvus.tls.serverName"
# OpenSSL verify results (x509_vfy.h) that mean "not signed by a CA we trust".
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})
_EXPIRED, _NOT_YET_VALID, _HOSTNAME_MISMATCH, _IP_MISMATCH = 10, 9, 62, 64
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # preface + SETTINGS


@dataclass(frozen=True)
class TlsMaterial:
    """What the pool's Secrets hold (PEM text) and where it came from, for messages. The key never shows in a
    repr; it is registered with the log filter when read (connection.py)."""

    ca_pem: str | None = None
    client_cert_pem: str | None = None
    client_key_pem: str | None = field(default=None, repr=False)
    server_name: str | None = None
    ca_source: str = ""  # "Secret milvus-ca (key ca.crt)"
    client_source: str = ""  # "Secret milvus-client (keys tls.crt, tls.key)"


_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _tlv(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start, end) of the DER element at `offset`: its contents are der[start:end]."""
    tag, length, offset = der[offset], der[offset + 1], offset + 2
    if length & 0x80:
        size = length & 0x7F
        length, offset = int.from_bytes(der[offset:offset + size], "big"), offset + size
    if offset + length > len(der):
        raise ValueError("truncated DER")
    return tag, offset, offset + length


def _not_after(der: bytes) -> datetime.datetime:
    """Certificate.tbsCertificate.validity.notAfter (RFC 5280 4.1): the ssl module decodes no certificate but a
    CA's, so the few fields on the way are walked here."""
    _, certificate, _ = _tlv(der, 0)
    _, position, _ = _tlv(der, certificate)  # tbsCertificate's contents
    tag, _, end = _tlv(der, position)
    if tag == 0xA0:  # [0] version
        position = end
    for _ in range(3):  # serialNumber, signature, issuer
        position = _tlv(der, position)[2]
    _, validity, _ = _tlv(der, position)
    tag, start, end = _tlv(der, _tlv(der, validity)[2])  # notBefore, then notAfter
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)


def _expired(pem: str, now: float) -> str | None:
    """When the first certificate of `pem` that has expired did (UTC), or None; ValueError if `pem` holds none."""
    blocks = _PEM_CERTIFICATE.findall(pem)
    if not blocks:
        raise ValueError("no PEM certificate")
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)  # OpenSSL must read them too
    for block in blocks:
        not_after = _not_after(ssl.PEM_cert_to_DER_cert(block))
        if not_after.timestamp() < now:
            return not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def material_problems(material: TlsMaterial, now: float | None = None) -> list[tuple[str, str]]:
    """(field, message) for each certificate that cannot work: not PEM, expired, a key that does not match."""
    now = time.time() if now is None else now
    problems: list[tuple[str, str]] = []
    if material.ca_pem is not None:
        try:
            expired = _expired(material.ca_pem, now)
        except (ssl.SSLError, ValueError, IndexError) as exc:
            problems.append((CA_FIELD, f"{material.ca_source} is not a PEM certificate: {exc}"))
        else:
            if expired:
                problems.append((CA_FIELD, f"the CA certificate in {material.ca_source} expired on {expired}"))
    if material.client_cert_pem is not None and material.client_key_pem is not None:
        try:
            expired = _expired(material.client_cert_pem, now)
            with _private_directory() as directory:
                files = _write_files(directory, material)
                assert files.cert is not None and files.key is not None
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(files.cert, files.key)
        except (ssl.SSLError, ValueError, IndexError) as exc:
            problems.append((CLIENT_FIELD, f"{material.client_source} does not hold a PEM certificate and its "
                                           f"private key: {exc}"))
        else:
            if expired:
                problems.append((CLIENT_FIELD, f"the client certificate in {material.client_source} expired on "
                                               f"{expired}"))
    return problems


@dataclass(frozen=True)
class TlsFiles:
    """The material as files in a private directory; `remove()` deletes them."""

    directory: Path
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def write(cls, material: TlsMaterial) -> TlsFiles:
        return _write_files(Path(tempfile.mkdtemp(prefix="milvus-rg-tls-")), material)

    def pymilvus_options(self, server_name: str | None) -> dict[str, str]:
        """pymilvus' keywords: the CA alone is `server_pem_path` (one-way); with a client certificate, all three."""
        options: dict[str, str] = {"server_name": server_name} if server_name else {}
        if self.ca is not None and self.cert is not None and self.key is not None:
            options.update(ca_pem_path=str(self.ca), client_pem_path=str(self.cert), client_key_path=str(self.key))
        elif self.ca is not None:
            options["server_pem_path"] = str(self.ca)
        return options

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_files(directory: Path, material: TlsMaterial) -> TlsFiles:
    def write(name: str, text: str | None) -> Path | None:
        if text is None:
            return None
        path = directory / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return path

    return TlsFiles(directory, write("ca.pem", material.ca_pem), write("client.pem", material.client_cert_pem),
                    write("client.key", material.client_key_pem))


@contextlib.contextmanager
def _private_directory() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="milvus-rg-tls-check-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def client_context(files: TlsFiles | None) -> ssl.SSLContext:
    """What the operator trusts and presents: the pool's CA (else the system's) and client certificate."""
    context = ssl.create_default_context(cafile=str(files.ca) if files and files.ca else None)
    if files is not None and files.cert is not None and files.key is not None:
        context.load_cert_chain(files.cert, files.key)
    return context


@dataclass(frozen=True)
class Endpoint:
    """One TLS endpoint of Milvus, for `diagnose`: where, how to say it, and the field that sets its scheme."""

    host: str
    port: int
    url: str  # as the spec gives it, for messages
    url_field: str  # spec.milvus.uri | spec.milvus.managementUri
    secure: bool
    hello: bytes  # what a server of this port answers once the handshake is done


async def diagnose(endpoint: Endpoint, material: TlsMaterial | None, files: TlsFiles | None,
                   timeout: float) -> MilvusTlsError | None:
    """Why a connection to `endpoint` fails at the TLS layer, from a handshake of our own; None when the cause is
    not TLS (refused, no answer, or the handshake and a first exchange work)."""
    if not endpoint.secure:
        return await _serves_tls(endpoint, timeout)
    context = client_context(files)
    if endpoint.hello == HTTP2_HELLO:
        context.set_alpn_protocols(["h2"])  # as gRPC offers it
    server_name = (material.server_name if material else None) or endpoint.host
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=context,
                                                           server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        return _verify_failure(endpoint, material, server_name, exc)
    except ssl.SSLError as exc:
        return _handshake_failure(endpoint, material, exc)
    except (OSError, TimeoutError):
        return None  # not a TLS problem: the port does not answer
    try:
        writer.write(endpoint.hello)
        async with asyncio.timeout(min(timeout, 2.0)):
            answer = await reader.read(1)
    except (OSError, ssl.SSLError):
        answer = b""
    except TimeoutError:
        return None  # no verdict
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if answer:
        return None
    # The handshake passed on our side, then Milvus hung up without a word: it checked our certificate (TLS 1.3
    # servers verify it after the handshake, and grpc's closes the connection without an alert).
    if material is None or material.client_cert_pem is None:
        return MilvusTlsError(f"Milvus at {endpoint.url} closed the connection after the TLS handshake: it requires a "
                              f"client certificate (mutual TLS, common.security.tlsMode 2)", CLIENT_FIELD)
    return MilvusTlsError(f"Milvus at {endpoint.url} closed the connection after the TLS handshake: it refused the "
                          f"client certificate in {material.client_source} (not signed by a CA it trusts?)",
                          CLIENT_FIELD)


def _verify_failure(endpoint: Endpoint, material: TlsMaterial | None, server_name: str,
                    exc: ssl.SSLCertVerificationError) -> MilvusTlsError:
    reason = f"{exc.verify_message} (OpenSSL verify error {exc.verify_code})"
    where = f"the certificate Milvus presents at {endpoint.url}"
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return MilvusTlsError(f"{where} is not valid for {server_name!r}: {reason}; set spec.milvus.tls.serverName "
                              "to a name the certificate carries", SERVER_NAME_FIELD)
    if exc.verify_code in (_EXPIRED, _NOT_YET_VALID):
        return MilvusTlsError(f"{where} is out of its validity period: {reason}; renew Milvus's certificate "
                              "(tls.serverPemPath)", endpoint.url_field)
    trusted = material.ca_source if material and material.ca_pem else "the system's CAs"
    if exc.verify_code in _UNTRUSTED:
        return MilvusTlsError(f"{where} is not signed by the CA in {trusted}: {reason}", CA_FIELD)
    return MilvusTlsError(f"{where} cannot be verified with {trusted}: {reason}", CA_FIELD)


def _handshake_failure(endpoint: Endpoint, material: TlsMaterial | None, exc: ssl.SSLError) -> MilvusTlsError:
    text = str(exc.reason or exc)
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text or "PACKET_LENGTH_TOO_LONG" in text:
        return MilvusTlsError(f"Milvus at {endpoint.url} does not speak TLS ({text}): use http://",
                              endpoint.url_field)
    if "ALERT" in text.upper() and material is not None and material.client_cert_pem is not None:
        return MilvusTlsError(f"Milvus at {endpoint.url} refused the client certificate in {material.client_source}: "
                              f"{text}", CLIENT_FIELD)
    return MilvusTlsError(f"the TLS handshake with Milvus at {endpoint.url} failed: {text}", endpoint.url_field)


async def _serves_tls(endpoint: Endpoint, timeout: float) -> MilvusTlsError | None:
    """A plain (http://) endpoint that fails: does the port speak TLS instead?"""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only asks whether TLS answers
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=context)
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return MilvusTlsError(f"Milvus at {endpoint.url} serves TLS: use https:// (and spec.milvus.tls for its CA)",
                          endpoint.url_field)

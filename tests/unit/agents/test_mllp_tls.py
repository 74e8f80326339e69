"""MLLP over TLS (``agents.mllp.server_tls``): with a client CA, a sender must present a certificate
it signed (mutual TLS: the sign-in HL7's transport lacks); without one, or in plain TCP, it gets no
ACK and nothing is published. Certificates from the embedded stack's local CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path

import pytest

from vigil.agents.mllp import Tally, serve, server_tls
from vigil.infra.publish import Record
from vigil.infra.settings import MllpSettings
from vigil.infra.stack.tls import ensure_secure_material
from vigil.schemas.codecs.mllp import END, frame
from vigil.schemas.errors import UserError

ORU = (Path(__file__).parents[1] / "codecs" / "fixtures" / "hl7v2" / "oru_r01_vitals.hl7").read_bytes()


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return ensure_secure_material(tmp_path_factory.mktemp("tls-home"))


def exchange(limits: MllpSettings, client: ssl.SSLContext | None) -> tuple[bytes | str, list[Record]]:
    """One message sent to a listener with ``limits``; its ACK (or why none came) and what was published."""
    stored: list[Record] = []

    def publish(records: Sequence[Record]) -> None:
        stored.extend(records)

    async def scenario() -> bytes | str:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(publish, limits, "127.0.0.1", 0, stop, Tally(), bound.set_result))
        try:
            host = "localhost" if client is not None else None
            reader, writer = await asyncio.open_connection("127.0.0.1", await bound, ssl=client, server_hostname=host)
            writer.write(frame(ORU))
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(END), 10)
            writer.close()
            return answer
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            return type(exc).__name__
        finally:
            stop.set()
            await server

    return asyncio.run(scenario()), stored


def client_context(material, with_cert: bool) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(material.ca_file))
    if with_cert:
        context.load_cert_chain(material.broker_pem)  # a certificate the same CA signed
    return context


def test_a_sender_with_a_certificate_the_ca_signed_is_answered(material) -> None:  # type: ignore[no-untyped-def]
    limits = MllpSettings(tls_cert=material.broker_pem, tls_client_ca=material.ca_file)
    answer, stored = exchange(limits, client_context(material, with_cert=True))
    assert (
        isinstance(answer, bytes) and b"\rMSA|AA|" in answer and len(stored) == 11
    )  # 8 results, Age, Gender, 1 dead letter


def test_without_a_certificate_or_without_tls_nothing_is_answered_or_published(material) -> None:  # type: ignore[no-untyped-def]
    limits = MllpSettings(tls_cert=material.broker_pem, tls_client_ca=material.ca_file)
    answer, stored = exchange(limits, client_context(material, with_cert=False))
    assert not isinstance(answer, bytes) and stored == []
    answer, stored = exchange(limits, None)  # plain MLLP to the TLS port
    assert not isinstance(answer, bytes) and stored == []


def test_only_the_given_ca_signs_senders_not_the_systems(material, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A certificate signed by a CA the machine trusts (here SSL_CERT_FILE, as the system store) is
    refused: only ``tls_client_ca`` may sign senders."""
    other = ensure_secure_material(tmp_path / "other-home")  # another CA, and a certificate it signed
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca_file))
    limits = MllpSettings(tls_cert=material.broker_pem, tls_client_ca=material.ca_file)
    client = ssl.create_default_context(cafile=str(material.ca_file))
    client.load_cert_chain(other.broker_pem)
    answer, stored = exchange(limits, client)
    assert not isinstance(answer, bytes) and stored == []


def test_tls_without_client_certificates_encrypts_only(material) -> None:  # type: ignore[no-untyped-def]
    answer, _ = exchange(MllpSettings(tls_cert=material.broker_pem), client_context(material, with_cert=False))
    assert isinstance(answer, bytes) and b"\rMSA|AA|" in answer


def test_unusable_tls_settings_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="need VIGIL_MLLP__TLS_CERT"):
        server_tls(MllpSettings(tls_client_ca=tmp_path / "ca.pem"))
    with pytest.raises(UserError, match="cannot use the certificate"):
        server_tls(MllpSettings(tls_cert=tmp_path / "missing.pem"))
    assert server_tls(MllpSettings()) is None

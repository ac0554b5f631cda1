"""TLS and AUTH over loopback with real clients: smtplib, aiosmtplib and swaks."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest
import trustme

from relay.config import TLSConfig
from relay.logins import Throttle
from relay.smtp import replies
from tests import mail
from tests.support import (
    PASSWORD,
    USER,
    RunningRelay,
    listener,
    make_config,
    queue_id,
    smtplib_form,
    users,
)

LISTENERS = (
    listener("submission", "submission"),
    listener("smtps", "smtps"),
    listener("mx", "smtp", starttls="optional", auth="optional"),
    listener("lab", "smtp", auth="optional", allow_insecure_auth=True),
)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay with submission, smtps, an smtp listener with STARTTLS and a plaintext lab."""
    db = tmp_path_factory.mktemp("secure") / "relay.db"
    config = make_config(f"sqlite+aiosqlite:///{db}", listener=LISTENERS, auth=users())
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


def plain_token(user: str, password: str) -> str:
    """The AUTH PLAIN initial response for `user` and `password`."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def submit(relay: RunningRelay, name: str, mechanism: str = "PLAIN") -> str:
    """STARTTLS, AUTH with `mechanism`, send mail.plain(); return the queue id."""
    with relay.smtp(name) as client:
        client.ehlo("client.example")
        client.starttls(context=relay.client_tls())
        client.ehlo("client.example")
        client.user, client.password = USER, PASSWORD
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, authobject)
        assert code == 235
        client.mail("app@example.com")
        client.rcpt("user@example.org")
        code, reply = client.data(mail.plain())
    assert code == 250, reply
    return queue_id(reply)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_then_auth_on_submission(secure: RunningRelay, mechanism: str) -> None:
    """On 587: STARTTLS, then AUTH PLAIN or LOGIN, then mail; stored with user and TLS."""
    row = secure.message(submit(secure, "submission", mechanism))
    assert (row.auth_user, row.tls, row.listener) == (USER, True, "submission")


async def test_aiosmtplib_starttls_then_auth_on_submission(secure: RunningRelay) -> None:
    """aiosmtplib with start_tls and a login submits through the submission listener."""
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "user@example.org"
    message["Subject"] = "aiosmtplib"
    message.set_content("sent with aiosmtplib")
    _, reply = await aiosmtplib.send(
        message,
        hostname="127.0.0.1",
        port=secure.port("submission"),
        start_tls=True,
        tls_context=secure.client_tls(),
        username=USER,
        password=PASSWORD,
    )
    row = secure.message(queue_id(reply.encode()))
    assert (row.auth_user, row.tls, row.subject) == (USER, True, "aiosmtplib")


def test_swaks_starttls_then_auth_login_on_submission(secure: RunningRelay) -> None:
    """swaks, a real command-line client, does STARTTLS and AUTH LOGIN on 587."""
    if shutil.which("swaks") is None:
        if os.environ.get("CI"):
            pytest.fail("swaks is not installed: .ci/run must install it")
        pytest.skip("swaks is not installed (apt-get install swaks libnet-ssleay-perl)")
    result = subprocess.run(
        [
            "swaks",
            "--server", "127.0.0.1",
            "--port", str(secure.port("submission")),
            "--ehlo", "swaks.example",
            "--tls",
            "--auth", "LOGIN",
            "--auth-user", USER,
            "--auth-password", PASSWORD,
            "--from", "app@example.com",
            "--to", "user@example.org",
            "--header", "Subject: from swaks",
            "--body", "sent with swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found = [line for line in result.stdout.splitlines() if "queued as" in line]
    assert found, result.stdout
    row = secure.message(queue_id(found[-1].encode()))
    assert (row.auth_user, row.tls, row.subject) == (USER, True, "from swaks")


@pytest.mark.parametrize("client", ["smtplib", "aiosmtplib"])
async def test_implicit_tls_on_smtps(secure: RunningRelay, client: str) -> None:
    """On 465 TLS starts with the first byte; AUTH is offered at once, STARTTLS never."""
    port = secure.port("smtps")
    if client == "smtplib":
        with smtplib.SMTP_SSL("127.0.0.1", port, context=secure.client_tls(), timeout=10) as s:
            s.ehlo("client.example")
            assert "auth" in s.esmtp_features and "starttls" not in s.esmtp_features
            s.login(USER, PASSWORD)
            s.mail("app@example.com")
            s.rcpt("user@example.org")
            _, reply = s.data(mail.plain())
    else:
        _, text = await aiosmtplib.send(
            mail.plain(),
            sender="app@example.com",
            recipients=["user@example.org"],
            hostname="127.0.0.1",
            port=port,
            use_tls=True,
            tls_context=secure.client_tls(),
            username=USER,
            password=PASSWORD,
        )
        reply = text.encode()
    row = secure.message(queue_id(reply))
    assert (row.auth_user, row.tls, row.listener) == (USER, True, "smtps")


@pytest.mark.parametrize(
    ("name", "refusal"),
    [("submission", replies.STARTTLS_FIRST), ("mx", replies.ENCRYPTION_REQUIRED)],
)
def test_auth_before_starttls_is_refused(secure: RunningRelay, name: str, refusal: str) -> None:
    """Before STARTTLS, AUTH is neither advertised nor accepted (530 or 538 5.7.11)."""
    with secure.smtp(name) as client:
        client.ehlo("client.example")
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        token = plain_token(USER, PASSWORD)
        assert client.docmd("AUTH", "PLAIN " + token) == smtplib_form(refusal)


def test_after_starttls_auth_is_offered_and_starttls_is_not(secure: RunningRelay) -> None:
    """Once TLS is on, EHLO offers AUTH PLAIN and LOGIN and no more STARTTLS; a second
    STARTTLS gets 503 5.5.1, and the session still works."""
    with secure.smtp("submission") as client:
        client.ehlo("client.example")
        client.starttls(context=secure.client_tls())
        client.ehlo("client.example")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert "starttls" not in client.esmtp_features
        assert {"size", "8bitmime", "smtputf8", "pipelining"} <= set(client.esmtp_features)
        assert client.docmd("STARTTLS") == smtplib_form(replies.TLS_ALREADY_ACTIVE)
        assert client.login(USER, PASSWORD)[0] == 235


def test_submission_needs_starttls_then_auth_before_mail(secure: RunningRelay) -> None:
    """On submission MAIL gets 530 5.7.0 before STARTTLS, and again before AUTH."""
    with secure.smtp("submission") as client:
        client.ehlo("client.example")
        assert client.mail("app@example.com") == smtplib_form(replies.STARTTLS_FIRST)
        client.starttls(context=secure.client_tls())
        client.ehlo("client.example")
        assert client.mail("app@example.com") == smtplib_form(replies.AUTH_REQUIRED)


def test_insecure_auth_only_where_allowed(secure: RunningRelay) -> None:
    """A listener with allow_insecure_auth offers and accepts AUTH over plaintext."""
    with secure.smtp("lab") as client:
        client.ehlo("client.example")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert client.login(USER, PASSWORD)[0] == 235


@pytest.mark.parametrize(
    ("user", "password"),
    [(USER, "wrong"), ("mallory", PASSWORD), (USER, PASSWORD.upper())],
    ids=["wrong-password", "unknown-user", "wrong-case"],
)
def test_bad_credentials_get_535(secure: RunningRelay, user: str, password: str) -> None:
    """Wrong credentials get 535 5.7.8, and the session can try again."""
    with secure.smtp("lab") as client:
        client.ehlo("client.example")
        token = plain_token(user, password)
        assert client.docmd("AUTH", "PLAIN " + token) == smtplib_form(replies.AUTH_INVALID)
        assert client.docmd("AUTH", "PLAIN " + plain_token(USER, PASSWORD))[0] == 235


def test_failed_auth_is_answered_late_without_holding_up_others(tmp_path: Path) -> None:
    """After a failure the answer waits (asyncio.sleep) while other clients are served."""
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}",
        listener=(listener("lab", auth="optional", allow_insecure_auth=True),),
        auth=users(failure_delay=60.0),
    )
    relay = RunningRelay(config).start()
    try:
        with socket.create_connection(("127.0.0.1", relay.smtp_port), timeout=10) as guesser:
            reader = guesser.makefile("rb")
            reader.readline()
            guesser.sendall(b"EHLO guesser.example\r\n")
            while not reader.readline().startswith(b"250 "):
                pass
            guesser.sendall(b"AUTH PLAIN " + plain_token(USER, "guess").encode() + b"\r\n")
            with relay.smtp() as other:  # served while the guesser waits
                other.ehlo("other.example")
                assert other.login(USER, PASSWORD)[0] == 235
                assert other.noop()[0] == 250
            guesser.setblocking(False)
            with pytest.raises(BlockingIOError):
                guesser.recv(100)  # the 535 is still being held back
            reader.close()
    finally:
        relay.stop()


@pytest.mark.parametrize(
    ("events", "delays"),
    [
        (["fail", "fail", "fail", "fail"], [1.0, 2.0, 4.0, 8.0]),
        (["fail"] * 7, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]),
        (["fail", "fail", "ok", "fail"], [1.0, 2.0, 1.0]),
        (["fail", "fail", "quiet", "fail"], [1.0, 2.0, 1.0]),
    ],
    ids=["doubles", "capped", "success-forgets", "quiet-forgets"],
)
def test_throttle_doubles_the_pause_per_failure(events: list[str], delays: list[float]) -> None:
    """Each failure from one address doubles the pause, up to the cap; success or a quiet
    spell starts again from the base."""
    now = [0.0]
    throttle = Throttle(base=1.0, cap=10.0, forget_after=900.0, clock=lambda: now[0])
    seen = []
    for event in events:
        if event == "fail":
            seen.append(throttle.failed("192.0.2.1"))
        elif event == "ok":
            throttle.succeeded("192.0.2.1")
        else:
            now[0] += 901.0
    assert seen == delays
    assert throttle.failed("198.51.100.7") == 1.0  # another address counts apart


def test_authenticated_user_is_shown_on_the_message_page(secure: RunningRelay) -> None:
    """The message page names the authenticated user and TLS."""
    message_id = submit(secure, "submission")
    with httpx.Client(base_url=secure.web_url) as web:
        page = web.get(f"/message/{message_id}")
    assert page.status_code == 200
    assert f"authenticated as <b>{USER}</b>" in page.text and ", TLS" in page.text


def test_dev_certificate_is_made_beside_the_database_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a configured certificate one is made in relay-tls/ beside the database,
    its SHA-256 fingerprint is logged, the server presents it, and a restart reuses it."""
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}",
        listener=(listener("smtps", "smtps"),),
        auth=users(),
    )
    fingerprints = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="relay.smtp.tls"):
            relay = RunningRelay(config).start()
        try:
            with smtplib.SMTP_SSL(
                "127.0.0.1", relay.smtp_port, context=relay.client_tls(), timeout=10
            ) as client:
                assert client.sock is not None
                der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        finally:
            relay.stop()
        assert der is not None
        served = hashlib.sha256(der).hexdigest()
        (logged,) = [r.getMessage() for r in caplog.records if "fingerprint" in r.getMessage()]
        assert served.upper() in logged.replace(":", "")
        assert str(tmp_path / "relay-tls" / "cert.pem") in logged
        fingerprints.append(served)
    assert fingerprints[0] == fingerprints[1]
    assert (tmp_path / "relay-tls" / "key.pem").stat().st_mode & 0o077 == 0


def test_configured_certificate_is_served(tmp_path: Path) -> None:
    """[tls] cert and key are what clients see (verified against their CA); no dev cert."""
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}",
        listener=(listener("smtps", "smtps"),),
        tls=TLSConfig(cert=str(cert), key=str(key)),
        auth=users(),
    )
    relay = RunningRelay(config).start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with smtplib.SMTP_SSL("127.0.0.1", relay.smtp_port, context=context, timeout=10) as c:
            assert c.ehlo("client.example")[0] == 250
    finally:
        relay.stop()
    assert not (tmp_path / "relay-tls").exists()


@pytest.mark.parametrize(
    ("version", "accepted"),
    [(ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)],
)
def test_tls_older_than_1_2_is_refused(
    secure: RunningRelay, version: ssl.TLSVersion, accepted: bool
) -> None:
    """A client limited to TLS 1.1 cannot connect; one limited to TLS 1.2 can."""
    context = secure.client_tls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, on purpose
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if accepted:
        with smtplib.SMTP_SSL(
            "127.0.0.1", secure.port("smtps"), context=context, timeout=10
        ) as client:
            assert client.noop()[0] == 250
    else:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            smtplib.SMTP_SSL("127.0.0.1", secure.port("smtps"), context=context, timeout=10)

"""Per-user mailboxes end to end: mail sent with SMTP AUTH as alice or bob, or for a
[[mailbox]] rule's recipients, is read by each user alone over POP3, in the web UI and in
the API; an admin sees every mailbox and narrows with ?mailbox= or mailbox:NAME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.config import config_warnings, load_config
from relay.mailboxes import mailbox_for
from tests.pop3_support import HASHES, PASSWORDS, TOKEN, message, plain, pop3_config, send
from tests.support import RunningRelay


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A per-user relay with mail from alice, from bob, for tenant-a and for no one."""
    db = tmp_path_factory.mktemp("mailboxes") / "relay.db"
    running = RunningRelay(pop3_config(f"sqlite+aiosqlite:///{db}", per_user=True)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def sent(relay: RunningRelay) -> dict[str, str]:
    """The id of each message, by the mailbox it should land in."""
    return {
        "alice": send(relay, message("from alice"), user="alice"),
        "bob": send(relay, message("from bob"), user="bob"),
        "tenant-a": send(relay, message("for tenant a"), to="ops@tenant-a.test"),
        "default": send(relay, message("for nobody")),
    }


def web(relay: RunningRelay, user: str) -> httpx.Client:
    """An HTTP client of the web UI and API logged in as `user`."""
    return httpx.Client(base_url=relay.web_url, auth=(user, PASSWORDS[user]), timeout=10)


def listed(client: httpx.Client, path: str = "/api/v1/messages") -> set[str]:
    """The ids an API list answer holds."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return {m["ID"] for m in answer.json()["messages"]}


def test_ingest_puts_each_message_in_its_mailbox(relay: RunningRelay, sent: dict[str, str]) -> None:
    """The sender's mailbox for SMTP AUTH mail, the rule's for its recipients, else default."""
    for mailbox, message_id in sent.items():
        assert relay.message(message_id).mailbox == mailbox


def test_pop3_user_reads_only_their_mailbox(relay: RunningRelay, sent: dict[str, str]) -> None:
    """alice's POP3 session lists her message only; bob's his."""
    for user in ("alice", "bob"):
        client = plain(relay, user)
        try:
            _, lines, _ = client.uidl()
            assert [line.split()[1].decode() for line in lines] == [sent[user]]
        finally:
            client.quit()


def test_api_lists_search_and_latest_stay_in_the_users_mailbox(
    relay: RunningRelay, sent: dict[str, str]
) -> None:
    """alice's list, search (even mailbox:bob), latest and counts hold her mail only."""
    with web(relay, "alice") as alice:
        assert listed(alice) == {sent["alice"]}
        assert alice.get("/api/v1/messages").json()["total"] == 1
        assert listed(alice, "/api/v1/search?query=from") == {sent["alice"]}
        assert listed(alice, "/api/v1/search?query=mailbox:bob") == set()
        assert listed(alice, "/api/v1/messages?mailbox=bob") == {sent["alice"]}
        assert alice.get("/api/v1/message/latest").json()["ID"] == sent["alice"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/message/{id}", "/api/v1/message/{id}/raw", "/message/{id}", "/view/{id}.txt"],
)
def test_another_mailboxs_message_is_not_found(
    relay: RunningRelay, sent: dict[str, str], path: str
) -> None:
    """bob's message is 404 to alice, page and API alike; the admin reads it."""
    with web(relay, "alice") as alice, web(relay, "root") as root:
        assert alice.get(path.format(id=sent["bob"])).status_code == 404
        assert root.get(path.format(id=sent["bob"])).status_code == 200


def test_web_ui_list_shows_only_the_users_mailbox(
    relay: RunningRelay, sent: dict[str, str]
) -> None:
    """The UI's list for bob holds his subject, not alice's."""
    with web(relay, "bob") as bob:
        page = bob.get("/").text
    assert "from bob" in page
    assert "from alice" not in page


def test_admin_ui_offers_each_mailbox_as_a_filter(
    relay: RunningRelay, sent: dict[str, str]
) -> None:
    """The admin's sidebar links each mailbox; following bob's lists bob's mail only."""
    with web(relay, "root") as root:
        assert 'href="/?mailbox=bob"' in root.get("/").text
        page = root.get("/?mailbox=bob").text
    assert "from bob" in page
    assert "from alice" not in page


def test_wait_never_returns_another_mailboxs_message(
    relay: RunningRelay, sent: dict[str, str]
) -> None:
    """alice waiting for bob's subject times out; bob gets it."""
    with web(relay, "alice") as alice, web(relay, "bob") as bob:
        query = "/api/v1/wait?query=subject:%22from%20bob%22&timeout=0.2"
        assert alice.get(query).status_code == 408
        assert bob.get(query).json()["ID"] == sent["bob"]


def test_admin_sees_all_and_narrows_by_mailbox(relay: RunningRelay, sent: dict[str, str]) -> None:
    """The admin lists every message; ?mailbox= and mailbox:NAME narrow it."""
    with web(relay, "root") as root:
        assert set(sent.values()) <= listed(root)
        assert listed(root, "/api/v1/messages?mailbox=bob") == {sent["bob"]}
        assert listed(root, "/api/v1/search?query=mailbox:tenant-a") == {sent["tenant-a"]}


def test_bearer_token_sees_every_mailbox(relay: RunningRelay, sent: dict[str, str]) -> None:
    """A script with the [web] token lists every mailbox's mail, as an admin does."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=relay.web_url, headers=headers, timeout=10) as script:
        assert set(sent.values()) <= listed(script)


def test_queue_and_tags_are_for_admins(relay: RunningRelay) -> None:
    """What acts across mailboxes is 403 to a narrowed user, open to the admin."""
    with web(relay, "alice") as alice, web(relay, "root") as root:
        paths = ("/queue", "/api/v1/queue", "/api/v1/tags", "/webhooks", "/api/v1/webhooks",
                 "/suppressions", "/api/v1/suppressions")  # fmt: skip
        for path in paths:
            assert alice.get(path).status_code == 403
            assert root.get(path).status_code == 200


@pytest.fixture
def own(tmp_path: Path) -> Iterator[RunningRelay]:
    """A per-user relay of the test's own, for tests that delete or add mail."""
    config = pop3_config(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}", per_user=True)
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


def test_delete_all_deletes_only_the_users_mailbox(own: RunningRelay) -> None:
    """DELETE /api/v1/messages without IDs as bob empties bob's mailbox only; bob's IDs
    cannot delete alice's mail."""
    bobs = send(own, message("bob's"), user="bob")
    alices = send(own, message("alice's"), user="alice")
    with web(own, "bob") as bob:
        assert bob.request("DELETE", "/api/v1/messages", json={"IDs": [alices]}).text == "ok"
        assert own.message(alices) is not None
        assert bob.request("DELETE", "/api/v1/messages").text == "ok"
    assert own.message(bobs) is None
    assert own.message(alices) is not None
    client = plain(own, "bob")
    try:
        assert client.stat() == (0, 0)
    finally:
        client.quit()


def test_send_api_mail_lands_in_the_web_users_mailbox(own: RunningRelay) -> None:
    """POST /api/v1/send as bob files the message in bob's mailbox; with the bearer
    token (no user) the rules decide: default here."""
    mail = {"From": {"Email": "app@example.com"}, "To": [{"Email": "x@example.org"}]}
    with web(own, "bob") as bob:
        as_bob = bob.post("/api/v1/send", json={**mail, "Subject": "by bob"}).json()["ID"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=own.web_url, headers=headers, timeout=10) as script:
        by_token = script.post("/api/v1/send", json={**mail, "Subject": "by token"}).json()["ID"]
    assert own.message(as_bob).mailbox == "bob"
    assert own.message(by_token).mailbox == "default"


def test_shared_mode_puts_smtp_auth_mail_in_default() -> None:
    """In shared mode (the default) a sender's login does not pick the mailbox."""
    config = load_config(None, env={})
    assert mailbox_for(config, "alice", ["x@example.com"]) == "default"


def test_a_mailbox_rule_needs_a_match(tmp_path: Path) -> None:
    """[[mailbox]] without match is refused at load, naming the key."""
    path = tmp_path / "relay.toml"
    path.write_text('[[mailbox]]\nname = "tenant-a"\n')
    with pytest.raises(Exception, match=r"mailbox\[0\]\.match"):
        load_config(path, env={})


def test_pop3_user_needs_auth_users(tmp_path: Path) -> None:
    """A pop3 listener without [auth.users] is refused at load with a sentence."""
    path = tmp_path / "relay.toml"
    path.write_text('[[listener]]\nname = "pop3"\nkind = "pop3"\naddress = "127.0.0.1:1110"\n')
    with pytest.raises(Exception, match=r"auth\.users"):
        load_config(path, env={})


def test_check_config_warns_of_clear_passwords_and_unreadable_mailboxes(tmp_path: Path) -> None:
    """allow_insecure_auth on a public POP3 address and a per-user rule's mailbox without a
    user of its name are each one warning; the loopback dev listener is none."""
    hashed = HASHES["alice"]
    path = tmp_path / "relay.toml"
    path.write_text(
        '[[listener]]\nname = "dev"\nkind = "pop3"\naddress = "127.0.0.1:1110"\n'
        "allow_insecure_auth = true\n"
        '[[listener]]\nname = "lan"\nkind = "pop3"\naddress = "0.0.0.0:110"\n'
        "allow_insecure_auth = true\n"
        f'[auth.users]\nalice = "{hashed}"\n'
        '[mailboxes]\nmode = "per-user"\n'
        '[[mailbox]]\nname = "tenant-a"\nmatch = ["*@tenant-a.test"]\n'
    )
    warnings = config_warnings(load_config(path, env={}))
    assert len(warnings) == 2
    assert "listener 'lan'" in warnings[0]
    assert "mailbox 'tenant-a'" in warnings[1]


def test_a_web_user_table_with_admin_true_makes_an_admin(tmp_path: Path) -> None:
    """[web.users.NAME] hash = ..., admin = true loads as a user and an admin; a bad key
    in the table is an error naming it."""
    path = tmp_path / "relay.toml"
    hashed = HASHES["root"]
    path.write_text(
        f'[web.users]\nalice = "{hashed}"\n[web.users.root]\nhash = "{hashed}"\nadmin = true\n'
    )
    config = load_config(path, env={})
    assert dict(config.web.users) == {"alice": hashed, "root": hashed}
    assert config.web.admins == ("root",)
    path.write_text(f'[web.users.root]\nhash = "{hashed}"\nadmn = true\n')
    with pytest.raises(Exception, match=r"web\.users\.root"):
        load_config(path, env={})

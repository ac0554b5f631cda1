"""Releasing a message to chosen addresses (routes shown first), and the Deliveries tab's
per-recipient actions and live fragment, in-process."""

from __future__ import annotations

import re
import types

import pytest

from relay.config import RouteConfig, UpstreamConfig
from relay.status import Status
from relay.store import Store
from tests.queueing import recipients
from tests.test_queue_view import seeded
from tests.webkit import add, csrf_token, message, web_client

ROUTES = (
    RouteConfig(match="*@ourcompany.example", action="relay", upstream="smarthost"),
    RouteConfig(match="*@partner.example", action="relay", upstream="mx"),
    RouteConfig(match="blocked.example", action="reject"),
)
UPSTREAMS = types.MappingProxyType({"smarthost": UpstreamConfig(host="smtp.test", port=587)})
ROUTED = {"route": ROUTES, "upstream": UPSTREAMS}


async def captured(store: Store) -> str:
    """A message captured for two recipients."""
    return await add(
        store,
        message("Staging copy"),
        {"dev@ourcompany.example": Status.CAPTURED, "someone@else.example": Status.CAPTURED},
    )


async def test_release_form_shows_each_captured_recipients_route(sqlite_store: Store) -> None:
    """The form starts with the captured recipients and says where each would go."""
    message_id = await captured(sqlite_store)
    async with web_client(sqlite_store, **ROUTED) as web:
        page = await web.get(f"/message/{message_id}/release")
    assert page.status_code == 200
    assert 'value="dev@ourcompany.example, someone@else.example"' in page.text
    rows = re.findall(r"<tr class=\"(\w+)\"><td><code>([^<]+)</code></td><td>.*?>([^<]+)</span>"
                      r"</td><td>([^<]+)</td><td>([^<]+)</td>", page.text)  # fmt: skip
    assert rows == [
        ("sends", "dev@ourcompany.example", "relay via smarthost (rule 1: *@ourcompany.example)",
         "smtp.test:587", "queued"),
        ("stays", "someone@else.example", "capture (no rule matches)", "—",
         "kept here, not sent"),
    ]  # fmt: skip
    assert "Release to 1 address<" in page.text


async def test_release_preview_for_typed_addresses(sqlite_store: Store) -> None:
    """Typed addresses (any separators, <brackets> allowed) are routed one by one."""
    message_id = await captured(sqlite_store)
    typed = "<boss@ourcompany.example>; x@blocked.example  ceo@partner.example"
    async with web_client(sqlite_store, **ROUTED) as web:
        page = await web.get(f"/message/{message_id}/release", params={"addresses": typed})
    assert page.status_code == 200
    text = page.text
    assert "boss@ourcompany.example" in text and "a new recipient: queued" in text
    assert "reject (rule 3: blocked.example)" in text and "refused by the routes" in text
    assert "relay by MX (rule 2: *@partner.example)" in text
    assert "the MX hosts of partner.example" in text
    assert "Release to 2 addresses<" in text
    assert (
        'name="addresses" value="boss@ourcompany.example, x@blocked.example, ceo@partner.example"'
        in text
    )


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("dev@ourcompany.example\r\nRCPT TO:<x@evil.example>", "must not contain line breaks"),
        ("a@ourcompany.example\nb@ourcompany.example", "must not contain line breaks"),
        ("bob", "“bob” is not an address like name@example.com"),
        ("bob@exa mple.com", "“mple.com” is not an address"),
        ("bob@-bad-.example", "has a domain (-bad-.example) that is not a host name"),
        ('bo"b@x.example', "has a local part"),
        ("", "give at least one address"),
        (", ".join(f"u{i}@ourcompany.example" for i in range(101)), "at most 100 addresses"),
    ],
)
async def test_release_refuses_bad_addresses(sqlite_store: Store, typed: str, reason: str) -> None:
    """Line breaks and malformed addresses get a 400 that says why, in preview and release;
    nothing is queued."""
    message_id = await captured(sqlite_store)
    async with web_client(sqlite_store, **ROUTED) as web:
        token = await csrf_token(web)
        preview = await web.get(f"/message/{message_id}/release", params={"addresses": typed})
        posted = await web.post(
            f"/message/{message_id}/release", data={"csrf": token, "addresses": typed}
        )
    for response in (preview, posted):
        assert response.status_code == 400
        assert reason in response.text.replace("&#34;", '"')
        assert "Release to" not in response.text
    rows = await recipients(sqlite_store, message_id)
    assert {r.status for r in rows.values()} == {Status.CAPTURED}


async def test_release_queues_relayed_addresses(store: Store) -> None:
    """Releasing queues the captured recipient in place and adds the new relayed address;
    capture and reject addresses are reported and left alone."""
    message_id = await captured(store)
    typed = "dev@ourcompany.example, new@ourcompany.example, x@blocked.example"
    async with web_client(store, **ROUTED) as web:
        token = await csrf_token(web)
        done = await web.post(
            f"/message/{message_id}/release", data={"csrf": token, "addresses": typed}
        )
    assert done.status_code == 200
    assert "<code>dev@ourcompany.example</code> via <b>relay:smarthost</b>" in done.text
    assert "<code>x@blocked.example</code>: reject" in done.text
    rows = await recipients(store, message_id)
    assert {a: (r.status, r.route) for a, r in rows.items()} == {
        "dev@ourcompany.example": (Status.QUEUED, "relay:smarthost"),
        "new@ourcompany.example": (Status.QUEUED, "relay:smarthost"),
        "someone@else.example": (Status.CAPTURED, "capture"),
    }


async def test_release_without_relay_routes_sends_nothing(sqlite_store: Store) -> None:
    """With no route that relays, the page says releasing would send nothing, offers no
    button, and a forced POST queues nothing."""
    message_id = await captured(sqlite_store)
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}/release")
        token = await csrf_token(web)
        forced = await web.post(
            f"/message/{message_id}/release",
            data={"csrf": token, "addresses": "dev@ourcompany.example"},
        )
    assert "releasing would send nothing" in page.text and "Release to" not in page.text
    assert forced.status_code == 200 and "capture (no rule matches)" not in forced.text
    assert "<code>dev@ourcompany.example</code>: capture" in forced.text
    rows = await recipients(sqlite_store, message_id)
    assert {r.status for r in rows.values()} == {Status.CAPTURED}


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("post", "/message/ID/release", {"addresses": "dev@ourcompany.example"}, 403),
        ("get", "/message/nope/release", {}, 404),
        ("post", "/message/nope/release", {"addresses": "a@b.example", "csrf": "TOKEN"}, 404),
    ],
)
async def test_release_refuses_without_token_or_message(
    sqlite_store: Store, method: str, path: str, data: dict[str, str], status: int
) -> None:
    """Release needs the CSRF token and an existing message."""
    message_id = await captured(sqlite_store)
    async with web_client(sqlite_store, **ROUTED) as web:
        token = await csrf_token(web)
        if data.get("csrf") == "TOKEN":
            data = {**data, "csrf": token}
        url = path.replace("ID", message_id)
        response = await (web.post(url, data=data) if method == "post" else web.get(url))
    assert response.status_code == status
    rows = await recipients(sqlite_store, message_id)
    assert {r.status for r in rows.values()} == {Status.CAPTURED}


async def test_deliveries_tab_offers_the_actions_each_status_allows(store: Store) -> None:
    """Failed: retry; deferred: retry, hold, cancel; held: release, cancel; delivered: none."""
    ids = await seeded(store)
    async with web_client(store) as web:
        smarthost = await web.get(f"/message/{ids['smarthost']}", params={"tab": "deliveries"})
        mx = await web.get(f"/message/{ids['mx']}", params={"tab": "deliveries"})

    def buttons(html: str, address: str) -> list[str]:
        block = html.split(f'<code class="addr">{address}</code>', 1)[1].split("</form>", 1)[0]
        block = block.split('<div class="delivery"', 1)[0]
        return re.findall(r'name="action" value="(\w+)"', block)

    assert buttons(smarthost.text, "a1@x.example") == ["retry"]
    assert buttons(smarthost.text, "ok@x.example") == []
    assert buttons(mx.text, "b1@slow.example") == ["retry", "hold", "cancel"]
    assert buttons(mx.text, "b3@other.example") == ["release", "cancel"]


@pytest.mark.parametrize(
    ("action", "address", "after"),
    [
        ("retry", "b1@slow.example", Status.QUEUED),
        ("hold", "b1@slow.example", Status.HELD),
        ("cancel", "b2@slow.example", Status.CANCELLED),
        ("release", "b3@other.example", Status.QUEUED),
    ],
)
async def test_deliveries_tab_acts_on_one_recipient(
    store: Store, action: str, address: str, after: Status
) -> None:
    """A recipient's button changes that recipient only and returns to the Deliveries tab."""
    ids = await seeded(store)
    rows = await recipients(store, ids["mx"])
    async with web_client(store) as web:
        token = await csrf_token(web)
        done = await web.post(
            f"/message/{ids['mx']}/action",
            data={"csrf": token, "action": action, "recipient": str(rows[address].id)},
        )
    assert done.status_code == 303
    assert done.headers["location"] == f"/message/{ids['mx']}?tab=deliveries"
    after_rows = await recipients(store, ids["mx"])
    assert after_rows[address].status == after
    others = {a: r.status for a, r in after_rows.items() if a != address}
    assert others == {a: r.status for a, r in rows.items() if a != address}


@pytest.mark.parametrize(
    ("path", "data", "status"),
    [
        ("/message/ID/action", {"action": "retry", "recipient": "x"}, 400),
        ("/message/ID/action", {"action": "explode"}, 400),
        ("/message/nope/action", {"action": "retry", "recipient": "1"}, 404),
    ],
)
async def test_recipient_actions_refuse_bad_input(
    sqlite_store: Store, path: str, data: dict[str, str], status: int
) -> None:
    """A bad recipient number or action is 400; an unknown message 404."""
    message_id = await captured(sqlite_store)
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        response = await web.post(path.replace("ID", message_id), data={**data, "csrf": token})
    assert response.status_code == status


async def test_deliveries_fragment_for_live_updates(sqlite_store: Store) -> None:
    """The fragment is the tab's content with the message's current status."""
    ids = await seeded(sqlite_store)
    async with web_client(sqlite_store) as web:
        live = await web.get(f"/message/{ids['mx']}/deliveries")
        missing = await web.get("/message/nope/deliveries")
    assert live.status_code == 200 and "<html" not in live.text
    assert 'data-status="deferred"' in live.text and "b3@other.example" in live.text
    assert missing.status_code == 404

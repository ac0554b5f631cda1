"""Fill a database for the list and UI benchmarks: many small messages, one large one.

`seed` bulk-inserts the rows the SMTP handler writes (summary, raw bytes, search text, one
recipient: a mix of statuses, listeners and users), far faster than sending them;
`add_large` stores one real multipart message of about 1 MB through `relay.ingest`, the
function SMTP DATA and the send API store mail with.
"""

from __future__ import annotations

import functools
import random
import time
from email import policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import insert

from bench import pgseed
from relay import ids
from relay.config import Config
from relay.ingest import Origin, submit
from relay.mime.summary import TEXT_LIMIT
from relay.store import Store
from relay.store.rawzip import pack, text_at_rest
from relay.store.schema import message, message_raw, message_text, recipient
from relay.store.search import search_text

WORDS = (  # noqa: SIM905 - one string reads better
    "invoice order shipment account password reset welcome newsletter report meeting "
    "update weekly monthly team project deadline review customer support ticket release "
    "deploy build error alert server database backup schedule payment receipt confirm"
).split()
STATUS_MIX = (
    ["captured"] * 900 + ["delivered"] * 80 + ["deferred"] * 8 + ["failed"] * 8 + ["held"] * 4
)
RARE_WORD = "needle-in-a-haystack"
"""In the body of one message in 10,000."""
COMMON_WORD = "invoice"
"""One of the words every body is drawn from."""
LARGE_SIZE = 1024 * 1024


def _message_rows(
    n: int, start: float, size: int = 0, dialect: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """Rows of `n` messages; bodies of 80 to 400 words, or of about `size` bytes; stored
    as ingest stores them on the database `dialect` names (relay.store.rawzip)."""
    rng = random.Random(n + int(start))
    rows: dict[str, list[dict[str, Any]]] = {"message": [], "raw": [], "text": [], "rcpt": []}
    for i in range(n):
        when = start + i * 0.5
        mid = ids.new_id(when)
        subject = " ".join(rng.choices(WORDS, k=5)).capitalize() + f" #{i}"
        sender = f"app{i % 7}@example.com"
        to = f"user{i % 5000}@example.org"
        words = int(size / 7.8) if size else rng.randint(80, 400)  # 7.8: a word, a space
        body = " ".join(rng.choices(WORDS, k=words))
        if i % 10_000 == 0:
            body += f" {RARE_WORD}"
        raw = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
        rows["message"].append(
            {
                "id": mid, "received_at": when, "mail_from": sender, "size": len(raw),
                "subject": subject, "from_header": sender, "to_header": to, "cc_header": "",
                "message_id_header": f"{mid}@example.com", "attachments": int(i % 9 == 0),
                "snippet": body[:250], "listener": "submission" if i % 4 == 0 else "smtp",
                "peer": "127.0.0.1", "helo": "bench", "auth_user": f"app{i % 3}" if i % 4 == 0
                else None, "tls": False, "read": i % 3 == 0,
            }
        )  # fmt: skip
        stored = pack(raw)  # compressed, as ingest stores it
        rows["raw"].append({"message_id": mid, "data": stored.data, "encoding": stored.encoding})
        text = search_text(subject, [sender, to], body, TEXT_LIMIT)
        rows["text"].append({"message_id": mid, "text": text_at_rest(text, dialect)})
        status = rng.choice(STATUS_MIX)
        rows["rcpt"].append(
            {
                "message_id": mid, "address": to, "address_key": to, "domain": "example.org",
                "route": "capture" if status == "captured" else "relay:smarthost",
                "status": status, "attempts": 0 if status == "captured" else 1,
                "updated_at": when, "next_attempt_at": when + 86400 * 30
                if status == "deferred" else None,
            }
        )  # fmt: skip
    return rows


async def seed(store: Store, count: int, batch: int = 2000, size: int = 0) -> float:
    """Insert `count` messages received over the last `count` seconds (one in 10,000 with
    RARE_WORD in its body; of about `size` bytes each, 0: 0.6 to 3 KB); deferred ones
    are due in 30 days. Return the seconds it took. On PostgreSQL by COPY with the
    rows made in a worker process and copied on two connections at once
    (bench/pgseed.py), then VACUUM ANALYZE, as autovacuum would shortly after a bulk load."""
    started = time.perf_counter()
    start = time.time() - count
    if not (store.db.is_sqlite or store.db.is_mysql):
        make_rows = functools.partial(_message_rows, size=size, dialect="postgresql")
        await pgseed.seed(store, count, batch, start, make_rows)
        return time.perf_counter() - started
    done = 0
    while done < count:
        n = min(batch, count - done)
        rows = _message_rows(n, start + done * 0.5, size, store.db.dialect)
        async with store.db.writer.begin() as conn:
            await conn.execute(insert(message), rows["message"])
            await conn.execute(insert(message_raw), rows["raw"])
            await conn.execute(insert(message_text), rows["text"])
            await conn.execute(insert(recipient), rows["rcpt"])
        done += n
    return time.perf_counter() - started


def _paragraphs(rng: random.Random, size: int) -> list[str]:
    out: list[str] = []
    total = 0
    while total < size:
        words = " ".join(rng.choices(WORDS, k=rng.randint(40, 120))).capitalize() + "."
        out.append(words)
        total += len(words) + 2
    return out


def large_message(size: int = LARGE_SIZE) -> bytes:
    """A message of about `size` bytes as a mail client would send it: multipart/mixed
    with a multipart/alternative (text, and HTML with tables, links and a remote image)
    and a binary attachment; the attachment takes about half of the bytes."""
    rng = random.Random(size)
    msg = EmailMessage(policy=policy.default)
    msg["From"] = "Reports <reports@example.com>"
    msg["To"] = "Team <team@example.org>"
    msg["Subject"] = f"Monthly report with attachment ({size // 1024} KB)"
    msg["Message-ID"] = "<large-report@example.com>"
    paragraphs = _paragraphs(rng, size // 8)
    msg.set_content("\n\n".join(paragraphs) + "\n")
    rows = "".join(
        f"<tr><td>{i}</td><td>{rng.choice(WORDS)}</td><td>{rng.randint(1, 99_999)}.00</td>"
        f'<td><a href="https://example.com/item/{i}">details</a></td></tr>\n'
        for i in range(size // 520)
    )
    html = (
        "<!DOCTYPE html><html><head><style>td{padding:2px 6px}</style></head><body>\n"
        '<p><img src="https://example.com/logo.png" alt="logo" width="120"></p>\n'
        + "".join(f"<p>{p}</p>\n" for p in paragraphs)
        + f'<table border="1">\n{rows}</table>\n</body></html>\n'
    )
    msg.add_alternative(html, subtype="html")
    attachment = rng.randbytes(size // 2 * 3 // 4 - 10_000)  # base64: about size / 2
    msg.add_attachment(
        attachment, maintype="application", subtype="pdf", filename="report-2026-10.pdf"
    )
    return msg.as_bytes(policy=policy.SMTP)


async def add_large(store: Store, config: Config, size: int = LARGE_SIZE) -> tuple[str, int]:
    """Store `large_message(size)` as SMTP DATA would; return its id and stored size."""
    content = large_message(size)
    origin = Origin(listener="smtp", peer="127.0.0.1", helo="bench")
    message_id = await submit(
        store, config, "reports@example.com", ["team@example.org"], content, origin
    )
    row = await store.messages.get(message_id)
    assert row is not None
    return message_id, row.size

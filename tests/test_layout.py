"""The house keeps its shape: small modules and functions, and imports that follow the
layers of docs/architecture.md (read from the source with ast, nothing imported)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60

IO = (
    "asyncio", "socket", "ssl", "selectors", "subprocess", "threading", "concurrent",
    "multiprocessing", "os", "shutil", "pathlib", "tempfile", "http", "urllib", "sqlalchemy",
    "alembic", "aiosqlite", "asyncpg", "aiosmtpd", "aiosmtplib", "httpx", "starlette",
    "uvicorn", "jinja2", "dns", "web", "relay.store", "relay.offload", "relay.smtp",
    "relay.delivery", "relay.checks", "relay.app", "relay.ingest", "relay.processes",
)  # fmt: skip
"""What a pure module may not import: sockets, threads, files, databases, servers."""

ROUTE_LITERAL = re.compile(r"relay:\S*")
"""A relay route or a destination written out: "relay:" and one word (prose that names
the forms, or the command line's "relay: " before a message, is not one)."""
NOT_A_ROUTE = {"relay/store/notices.py": "the tag of relay's NOTIFY payloads"}

RULES = [
    # (the modules a rule is about, what they may not import, modules the rule spares)
    ("relay/", ("web",), ("relay/app.py",)),
    (
        "relay/store/",
        ("relay.smtp", "relay.delivery", "relay.pop3", "relay.ingest", "relay.cli"),
        (),
    ),
    ("relay/store/", ("relay.events",), ()),
    # The webhooks' sender meets the rest only in the store.
    (
        "relay/events/",
        ("relay.smtp", "relay.delivery", "relay.pop3", "relay.ingest", "relay.cli"),
        (),
    ),
    ("relay/smtp/", ("relay.events",), ()),
    ("relay/delivery/", ("relay.events",), ()),
    # The store takes routes already decided (its callers route); it never routes.
    (
        "relay/store/",
        ("relay.routing.route", "relay.routing.route_all", "relay.config.RouteConfig"),
        (),
    ),
    ("relay/smtp/", ("relay.delivery", "relay.pop3"), ()),
    ("relay/delivery/", ("relay.smtp", "relay.pop3"), ()),
    ("relay/pop3/", ("relay.smtp", "relay.delivery", "relay.ingest"), ()),
    ("relay/ingest.py", ("relay.smtp", "relay.delivery", "relay.pop3", "relay.cli"), ()),
    ("relay/mailboxes.py", IO, ()),
    ("relay/mime/", IO, ()),
    ("relay/routing.py", IO, ()),
]


def sources() -> list[Path]:
    """Every Python file of relay/ and web/ but the schema revisions (generated, frozen)."""
    found = [*(ROOT / "relay").rglob("*.py"), *(ROOT / "web").rglob("*.py")]
    return sorted(p for p in found if "versions" not in p.relative_to(ROOT).parts)


def name(path: Path) -> str:
    """`path` relative to the repository, as docs/architecture.md writes it."""
    return str(path.relative_to(ROOT))


def imported(source: str, package: str) -> set[str]:
    """The modules `source` (a module of `package`) imports, anywhere in it, by full dotted
    name: `from relay import mime` gives relay.mime, a relative import is resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def breaks(source: str, package: str, forbidden: tuple[str, ...]) -> list[str]:
    """The imports of `source` that `forbidden` names (a module or anything under it)."""
    return sorted(
        module
        for module in imported(source, package)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    )


def package_of(path: Path) -> str:
    """The dotted package a source file belongs to."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def long_functions(source: str, label: str) -> list[str]:
    """The functions of `source` longer than MAX_FUNCTION_LINES, with their length."""
    return [
        f"{label}:{node.lineno} {node.name} ({length} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]


def destination_spellings(source: str) -> list[str]:
    """The string constants of `source` that spell a destination or a relay route: "relay:"
    and anything that starts so (as a literal, or the start of an f-string; "relay: " and
    a message is the command line's prefix, not a route)."""
    return sorted(
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and ROUTE_LITERAL.fullmatch(node.value)
    )


def test_only_routing_spells_a_destination() -> None:
    """relay.routing.Destination is the one text form of a destination: no other module of
    relay/ or web/ writes "relay:mx", "relay:" or the like itself."""
    spelled = {
        name(p): found
        for p in sources()
        if name(p) != "relay/routing.py" and name(p) not in NOT_A_ROUTE
        if (found := destination_spellings(p.read_text(encoding="utf-8")))
    }
    assert spelled == {}


def test_modules_stay_small() -> None:
    """No module of relay/ or web/ is over MAX_MODULE_LINES lines."""
    lines = {name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in sources()}
    assert {n: count for n, count in lines.items() if count > MAX_MODULE_LINES} == {}


def test_functions_stay_short() -> None:
    """No function of relay/ or web/ is over MAX_FUNCTION_LINES lines."""
    assert [
        f for p in sources() for f in long_functions(p.read_text(encoding="utf-8"), name(p))
    ] == []


@pytest.mark.parametrize(
    ("scope", "forbidden", "spared"), RULES, ids=[f"{r[0]}-{r[1][0]}" for r in RULES]
)
def test_layers_import_only_downwards(
    scope: str, forbidden: tuple[str, ...], spared: tuple[str, ...]
) -> None:
    """relay/ never imports web/ (but the composition root), the store never imports
    SMTP or delivery, SMTP and delivery never import each other, nothing climbs back above
    ingest, and mime/ and routing.py import nothing that does I/O."""
    offenders = {
        name(p): found
        for p in sources()
        if name(p).startswith(scope) and name(p) not in spared
        if (found := breaks(p.read_text(encoding="utf-8"), package_of(p), forbidden))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "forbidden", "expected"),
    [
        ("from web.app import create_app\n", ("web",), ["web.app", "web.app.create_app"]),
        ("from relay import smtp\n", ("relay.smtp",), ["relay.smtp"]),
        ("import relay.delivery.worker\n", ("relay.delivery",), ["relay.delivery.worker"]),
        ("def f():\n    import asyncio\n", ("asyncio",), ["asyncio"]),
        ("from ..smtp import session\n", ("relay.smtp",), ["relay.smtp", "relay.smtp.session"]),
        ("from . import queue\n", ("relay.store",), ["relay.store", "relay.store.queue"]),
        ("from relay import smtpd\n", ("relay.smtp",), []),
    ],
)
def test_the_import_check_sees_every_form(
    source: str, forbidden: tuple[str, ...], expected: list[str]
) -> None:
    """The import check finds imports at the top, inside functions, relative and by
    `from relay import X` (here in a module of relay.store), and does not mistake a
    longer name for a package."""
    assert breaks(source, "relay.store", forbidden) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('MX_ROUTE = "relay:mx"\n', ["relay:mx"]),
        ('key = f"relay:mx:{domain}"\n', ["relay:mx:"]),
        ('name = route.removeprefix("relay:")\n', ["relay:"]),
        ('"""A destination: relay:NAME, or relay:mx:DOMAIN."""\n', []),
        ('print(f"relay: {problem}")\n', []),
        ('help="relay:NAME, or relay:mx:DOMAIN"\n', []),
    ],
)
def test_the_spelling_check_sees_literals(source: str, expected: list[str]) -> None:
    """A destination written out as a literal or an f-string is found; prose that names the
    forms, and the command line's "relay: " prefix, are not."""
    assert destination_spellings(source) == expected


def test_a_function_one_line_too_long_is_found() -> None:
    """A function one line over the limit is reported, one at the limit is not."""
    body = "    x = 1\n" * (MAX_FUNCTION_LINES - 1)
    source = f"def fits():\n{body}\n\ndef over():\n{body}    x = 2\n"
    assert long_functions(source, "probe") == [f"probe:63 over ({MAX_FUNCTION_LINES + 1} lines)"]

"""The README stands alone (every link stays in the repository) and docs/architecture.md
stays true: it names every module, and the import rules it states hold in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def modules() -> list[Path]:
    """Every Python module of relay/ and web/ but package markers and schema revisions."""
    found = [*(ROOT / "relay").rglob("*.py"), *(ROOT / "web").rglob("*.py")]
    return sorted(
        p for p in found if p.name != "__init__.py" and "versions" not in p.relative_to(ROOT).parts
    )


def imports(path: Path) -> set[str]:
    """The top-level packages `path` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_readme_links_stay_inside_the_repository() -> None:
    """Every relative link of the README names a file or folder of the repository, none
    outside it, and the architecture is one of them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if "://" not in t]
    assert "docs/architecture.md" in targets
    for target in targets:
        resolved = (ROOT / target).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), target
    assert "../" not in text and "DESIGN.md" not in text


def test_architecture_names_every_module() -> None:
    """docs/architecture.md has a line for every module of relay/ and web/, and names
    none that is gone."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in modules() if str(p.relative_to(ROOT)) not in text]
    assert missing == []
    gone = [name for name in re.findall(r"`((?:relay|web)/[a-z0-9_/]+\.py)`", text)
            if not (ROOT / name).is_file()]  # fmt: skip
    assert gone == []


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("web", ("web/", "relay/app.py")),
        ("aiosmtpd", ("relay/smtp/",)),
        ("aiosmtplib", ("relay/delivery/",)),
        ("starlette", ("web/", "relay/app.py")),
        ("uvicorn", ("web/", "relay/app.py")),
        ("jinja2", ("web/",)),
        ("alembic", ("relay/store/",)),
        ("sqlalchemy", ("relay/store/", "relay/smtp/tls.py", "relay/cli/queue.py")),
        ("httpx", ("relay/checks/", "relay/events/")),
        ("tinycss2", ("relay/checks/",)),
        ("dkim", ("relay/delivery/",)),
    ],
)
def test_import_rules_of_the_architecture_hold(library: str, allowed: tuple[str, ...]) -> None:
    """Each library (and web/) is imported only where docs/architecture.md says it is."""
    offenders = [
        name
        for path in modules()
        if library in imports(path)
        and not (name := str(path.relative_to(ROOT))).startswith(allowed)
    ]
    assert offenders == []

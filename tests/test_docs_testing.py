"""docs/testing.md's examples run as they are written: each block that starts with
`# file: NAME` becomes that file in a fresh directory, and pytest runs them together with
relay's plugin (a relay of their own, Django and Flask-Mail for real)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
_BLOCK = re.compile(r"```python\n# file: (\S+)\n(.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    """The complete example files of docs/testing.md, by name."""
    return {name: code for name, code in _BLOCK.findall(DOC.read_text(encoding="utf-8"))}


def test_the_doc_has_the_examples_the_issue_asks_for() -> None:
    """smtplib, Django (EMAIL_HOST/EMAIL_PORT from the fixture), Flask-Mail, a retry after
    451: each a complete file."""
    found = examples()
    assert set(found) == {
        "test_smtplib.py",
        "test_django.py",
        "test_flask_mail.py",
        "test_retry.py",
    }
    assert "EMAIL_HOST=relay_server.smtp_host" in found["test_django.py"]
    assert "EMAIL_PORT=relay_server.smtp_port" in found["test_django.py"]
    assert "code=451" in found["test_retry.py"]


@pytest.mark.slow
def test_every_example_of_the_doc_passes(pytester: pytest.Pytester) -> None:
    """All of the doc's example files, run by pytest with relay's plugin: every test passes."""
    files = examples()
    for name, code in files.items():
        pytester.path.joinpath(name).write_text(code, encoding="utf-8")
    count = sum(len(re.findall(r"^def test_", code, re.MULTILINE)) for code in files.values())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-q")
    result.assert_outcomes(passed=count)
    assert count >= 7

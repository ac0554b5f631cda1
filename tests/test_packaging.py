"""What a fresh clone installs: `make run` only what serving needs, `make test` the test
extra too, and a build that prints no setuptools deprecation warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pip_installs(target: str, venv: Path) -> list[str]:
    """The `pip install` lines `make TARGET` would run for a fresh `venv` (make -n runs
    nothing)."""
    planned = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in planned.splitlines() if re.search(r"pip install .*-e ", line)]


@pytest.mark.parametrize(
    ("target", "extras"),
    [("run", "'.[speed]'"), ("test", "'.[test,speed]'"), ("check", "'.[test,speed]'")],
)
def test_make_installs_the_extras_each_target_needs(
    tmp_path: Path, target: str, extras: str
) -> None:
    """`make run` installs the package with the speed extra only (no pytest, Playwright,
    mypy or ruff); `make test` and `make check` add the test extra."""
    (line,) = pip_installs(target, tmp_path / "venv")
    assert line.endswith(f"pip install --quiet -e {extras}")


@pytest.mark.slow
def test_building_the_package_prints_no_deprecation_warning(tmp_path: Path) -> None:
    """Building relay (as pip does for `make run`) gives setuptools nothing to warn about:
    `project.license` is an SPDX expression, not the deprecated table."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("relay", "web"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("*.pyc"))
    wheel = ["wheel", "--no-deps", "--no-cache-dir", "-v", "-w", str(tmp_path / "wheel")]
    built = subprocess.run(
        [sys.executable, "-m", "pip", *wheel, str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert list((tmp_path / "wheel").glob("relay-*.whl"))
    output = built.stdout + built.stderr
    assert not re.search(r"deprecat", output, re.IGNORECASE), output[-3000:]

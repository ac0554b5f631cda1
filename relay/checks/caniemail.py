"""The caniemail data set: which email clients support which HTML and CSS feature.

`caniemail.json` beside this module is the data of caniemail.com (MIT, see
`caniemail.LICENSE`) as the npm package `caniemail` ships it, trimmed to the fields relay
reads and written one feature a line. `make caniemail` refreshes it: it fetches the npm
package with npm and runs `python -m relay.checks.caniemail PACKAGE_DIR`.

A client's support is a string such as "y", "n", "a #1 #2" or "u": the letter says
supported, not supported, partial ("a", mitigated) or unknown; `#N` points at a note of
the feature. Unknown support is left out of every result.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

DATA_FILE = "caniemail.json"
LICENCE_FILE = "caniemail.LICENSE"
KEPT_FIELDS = (
    "slug",
    "title",
    "description",
    "url",
    "category",
    "tags",
    "keywords",
    "stats",
    "notes_by_num",
)
"""The fields of a feature that relay reads; the refresh drops the others."""

Support = Literal["yes", "partial", "no"]
SUPPORT_BY_LETTER: dict[str, Support] = {"y": "yes", "a": "partial", "n": "no"}


@dataclass(frozen=True)
class ClientSupport:
    """One client version's support of one feature."""

    family: str
    platform: str
    version: str
    support: Support
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Feature:
    """One caniemail feature with the support of every client version whose support is known."""

    slug: str
    title: str
    description: str
    url: str
    category: str
    tags: tuple[str, ...]
    keywords: str
    clients: tuple[ClientSupport, ...]
    notes: dict[str, str]


@dataclass(frozen=True)
class DataSet:
    """The whole data set: features by slug and the readable names of families and platforms."""

    features: dict[str, Feature]
    family_names: dict[str, str]
    platform_names: dict[str, str]
    updated: str

    def client_name(self, client: ClientSupport) -> str:
        """'Gmail Android (2019-10)': the family, the platform and the version, readable."""
        family = self.family_names.get(client.family, client.family)
        platform = self.platform_names.get(client.platform, client.platform)
        return f"{family} {platform} ({client.version})"

    def platforms(self) -> dict[str, list[str]]:
        """Each platform with the readable names of the client families tested on it, sorted."""
        out: dict[str, set[str]] = {}
        for feature in self.features.values():
            for client in feature.clients:
                names = out.setdefault(client.platform, set())
                names.add(self.family_names.get(client.family, client.family))
        return {platform: sorted(names) for platform, names in sorted(out.items())}


def parse_support(value: str) -> tuple[Support | None, tuple[str, ...]]:
    """'a #1 #2' → ("partial", ("1", "2")); unknown support ("u") → (None, notes)."""
    letter, *rest = value.split()
    notes = tuple(part[1:] for part in rest if part.startswith("#") and part[1:].isdigit())
    return SUPPORT_BY_LETTER.get(letter[:1]), notes


def _clients(stats: dict[str, dict[str, dict[str, str]]]) -> tuple[ClientSupport, ...]:
    out = []
    for family, platforms in stats.items():
        for platform, versions in platforms.items():
            for version, value in versions.items():
                support, notes = parse_support(value)
                if support is not None:
                    out.append(ClientSupport(family, platform, version, support, notes))
    return tuple(out)


def _feature(entry: dict[str, Any]) -> Feature:
    return Feature(
        slug=entry["slug"],
        title=entry["title"],
        description=entry.get("description") or "",
        url=entry.get("url") or "",
        category=entry["category"],
        tags=tuple(entry.get("tags") or ()),
        keywords=entry.get("keywords") or "",
        clients=_clients(entry.get("stats") or {}),
        notes={str(k): v for k, v in (entry.get("notes_by_num") or {}).items()},
    )


def parse(raw: dict[str, Any]) -> DataSet:
    """The data set from the JSON document (the shipped file or the npm package's)."""
    names = raw["nicenames"]
    features = {entry["slug"]: _feature(entry) for entry in raw["data"]}
    return DataSet(features, names["family"], names["platform"], raw.get("last_update_date", ""))


@functools.cache
def load() -> DataSet:
    """The shipped data set, read once per process."""
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse(json.loads(text))


def trim(raw: dict[str, Any], package_version: str) -> str:
    """The npm package's JSON, kept to what relay reads, as text with one feature a line."""
    head = {
        "api_version": raw["api_version"],
        "last_update_date": raw["last_update_date"],
        "package": f"caniemail {package_version}",
        "nicenames": {key: raw["nicenames"][key] for key in ("family", "platform")},
    }
    lines = [
        json.dumps(
            {key: entry.get(key) for key in KEPT_FIELDS}, ensure_ascii=False, separators=(",", ":")
        )
        for entry in sorted(raw["data"], key=lambda e: str(e["slug"]))
    ]
    head_text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return head_text + ',\n "data": [\n' + ",\n".join(lines) + "\n ]\n}\n"


LICENCE_HEAD = """\
caniemail.json is the data of caniemail.com (https://www.caniemail.com/) as packaged
by the npm package {package}. Both are under the MIT licence:

- the caniemail.com data: Copyright (c) 2019 HTeuMeuLeu
- the npm package, its licence text below:

"""


def refresh(package_dir: Path, target_dir: Path) -> None:
    """Write the trimmed data and its licence from an unpacked npm `caniemail` package."""
    manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    licence = (package_dir / "LICENSE").read_text(encoding="utf-8")
    if manifest.get("license") != "MIT" or "MIT License" not in licence:
        raise SystemExit(f"caniemail {manifest.get('version')}: the licence is no longer MIT")
    raw = json.loads((package_dir / "data" / DATA_FILE).read_text(encoding="utf-8"))
    text = trim(raw, manifest["version"])
    parse(json.loads(text))  # refuse a file that relay could not read
    (target_dir / DATA_FILE).write_text(text, encoding="utf-8")
    package = f"caniemail {manifest['version']}"
    head = LICENCE_HEAD.format(package=package)
    (target_dir / LICENCE_FILE).write_text(head + licence, encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover - `make caniemail`
    refresh(Path(sys.argv[1]), Path(__file__).parent)
    print(f"{Path(__file__).parent / DATA_FILE}: {len(load().features)} features")

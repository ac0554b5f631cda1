"""HTML compatibility: which email clients render the features a message's HTML uses.

`check_html(html)` answers in the shape of Mailpit's `GET /api/v1/message/{ID}/html-check`
(`Warnings`, `Total`, `Platforms`), judged against the caniemail data set. Each feature
found is a warning with every client's support (`Results`) and a score: the percentages of
the clients that support it, partly support it, or do not. The totals weigh each score by
how often the feature was found against the number of element nodes and, as Mailpit does,
keep the worst feature's weight. `filter_platforms` narrows a result to some platforms and
scores it again, for a UI that looks at one platform at a time.

Differences from Mailpit, on purpose: support is read by its letter (caniemail's "y #1" is
supported with a note, where Mailpit counts any noted value as partial), clients whose
support is unknown ("u") are left out rather than counted as partial, a client with several
notes gives its first in `NoteNumber`, image formats (caniemail's "image" category) count
as "html", and `Description` and the notes stay caniemail's Markdown text (Mailpit renders
them to HTML): a UI shows them as text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal, TypedDict

from relay.checks import caniemail, features
from relay.checks.html_scan import scan_html


class HtmlCheckResult(TypedDict):
    """One client version's support of a feature."""

    Name: str
    Platform: str
    Family: str
    Version: str
    Support: caniemail.Support
    NoteNumber: str


class HtmlCheckScore(TypedDict):
    """How often a feature was found and the percentages of clients by support."""

    Found: int
    Supported: float
    Partial: float
    Unsupported: float


class HtmlCheckWarning(TypedDict):
    """One feature the HTML uses, with its support and score."""

    Slug: str
    Title: str
    Description: str
    URL: str
    Category: Literal["html", "css"]
    Tags: list[str]
    Keywords: str
    Results: list[HtmlCheckResult]
    NotesByNumber: dict[str, str]
    Score: HtmlCheckScore


class HtmlCheckTotal(TypedDict):
    """The weighted result over every feature found."""

    Tests: int
    Nodes: int
    Supported: float
    Partial: float
    Unsupported: float


class HtmlCheckResponse(TypedDict):
    """The whole answer, as Mailpit's html-check gives it."""

    Warnings: list[HtmlCheckWarning]
    Total: HtmlCheckTotal
    Platforms: dict[str, list[str]]


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _score(results: Iterable[HtmlCheckResult], found: int) -> HtmlCheckScore:
    counts = {"yes": 0, "partial": 0, "no": 0}
    for result in results:
        counts[result["Support"]] += 1
    total = sum(counts.values())
    return HtmlCheckScore(
        Found=found,
        Supported=_percent(counts["yes"], total),
        Partial=_percent(counts["partial"], total),
        Unsupported=_percent(counts["no"], total),
    )


def _results(data: caniemail.DataSet, feature: caniemail.Feature) -> list[HtmlCheckResult]:
    return [
        HtmlCheckResult(
            Name=data.client_name(client),
            Platform=client.platform,
            Family=client.family,
            Version=client.version,
            Support=client.support,
            NoteNumber=client.notes[0] if client.notes else "",
        )
        for client in feature.clients
    ]


def _warning(data: caniemail.DataSet, feature: caniemail.Feature, found: int) -> HtmlCheckWarning:
    results = _results(data, feature)
    return HtmlCheckWarning(
        Slug=feature.slug,
        Title=feature.title,
        Description=feature.description,
        URL=feature.url,
        Category="css" if feature.category == "css" else "html",
        Tags=list(feature.tags),
        Keywords=feature.keywords,
        Results=results,
        NotesByNumber=dict(feature.notes),
        Score=_score(results, found),
    )


def _weight(score: HtmlCheckScore, key: Literal["Partial", "Unsupported"], nodes: int) -> float:
    """A score's share of the whole document: its percentage times how often it was found
    per node, at most 100."""
    return min(100.0, score[key] * score["Found"] / max(nodes, 1))


def _total(warnings: list[HtmlCheckWarning], nodes: int, tests: int) -> HtmlCheckTotal:
    partial = max((_weight(w["Score"], "Partial", nodes) for w in warnings), default=0.0)
    unsupported = max((_weight(w["Score"], "Unsupported", nodes) for w in warnings), default=0.0)
    unsupported = min(unsupported, 100.0 - partial)
    return HtmlCheckTotal(
        Tests=tests,
        Nodes=nodes,
        Supported=round(100.0 - partial - unsupported, 2),
        Partial=round(partial, 2),
        Unsupported=round(unsupported, 2),
    )


def _ranked(warnings: list[HtmlCheckWarning], nodes: int) -> list[HtmlCheckWarning]:
    """Worst first: by the weight of what fails, then by slug."""

    def badness(warning: HtmlCheckWarning) -> float:
        score = warning["Score"]
        return _weight(score, "Partial", nodes) + _weight(score, "Unsupported", nodes)

    return sorted(warnings, key=lambda w: (-badness(w), w["Slug"]))


def check_html(html: str) -> HtmlCheckResponse:
    """Judge `html` against the caniemail data set, in Mailpit's html-check shape.

    Pure and CPU-bound (about a second for 1 MB of HTML): run it in a thread.
    """
    data = caniemail.load()
    scan = scan_html(html)
    warnings = [
        _warning(data, data.features[slug], found)
        for slug, found in scan.found.items()
        if slug in data.features
    ]
    tests = len(features.catalogue().detected)
    return HtmlCheckResponse(
        Warnings=_ranked(warnings, scan.nodes),
        Total=_total(warnings, scan.nodes, tests),
        Platforms=data.platforms(),
    )


def filter_platforms(response: HtmlCheckResponse, platforms: Collection[str]) -> HtmlCheckResponse:
    """`response` with only the clients on `platforms` (keys such as "windows", "ios"),
    each feature and the totals scored again on them; an empty collection keeps all."""
    if not platforms:
        return response
    warnings = []
    for warning in response["Warnings"]:
        results = [r for r in warning["Results"] if r["Platform"] in platforms]
        score = _score(results, warning["Score"]["Found"])
        warnings.append(HtmlCheckWarning(**{**warning, "Results": results, "Score": score}))
    total = response["Total"]
    return HtmlCheckResponse(
        Warnings=_ranked(warnings, total["Nodes"]),
        Total=_total(warnings, total["Nodes"], total["Tests"]),
        Platforms=response["Platforms"],
    )


def platforms() -> dict[str, list[str]]:
    """Every platform of the data set with the client families tested on it (for a filter)."""
    return caniemail.load().platforms()

"""The HTML compatibility check: features found by real HTML and CSS parsers, judged against
the shipped caniemail data, in Mailpit's html-check shape."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from relay.checks import caniemail, features
from relay.checks.html_compat import check_html, filter_platforms, platforms

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "relay" / "checks"

WARNING_KEYS = {
    "Slug", "Title", "Description", "URL", "Category", "Tags", "Keywords", "Results",
    "NotesByNumber", "Score",
}  # fmt: skip
RESULT_KEYS = {"Name", "Platform", "Family", "Version", "Support", "NoteNumber"}
SCORE_KEYS = {"Found", "Supported", "Partial", "Unsupported"}
TOTAL_KEYS = {"Tests", "Nodes", "Supported", "Partial", "Unsupported"}

NEWSLETTER = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>News</title>
<style>
  /* layout */
  .wrap .col { display: flex; gap: 8px }
  a:hover { color: rgb(0, 0, 255) }
  @media (prefers-color-scheme: dark) { body { background: #000 !important } }
</style></head>
<body><div class="wrap"><p style="margin: 0 auto; width: 50%">Hello
<a href="https://shop.example/">shop</a> <img src="https://cdn.example/logo.webp" width="80">
</p></div></body></html>"""


def found(html: str) -> dict[str, int]:
    """Each feature slug found in `html` with how often."""
    return {w["Slug"]: w["Score"]["Found"] for w in check_html(html)["Warnings"]}


def test_answer_has_mailpit_shape() -> None:
    """Warnings, Total and Platforms with Mailpit's keys and value types."""
    result = check_html(NEWSLETTER)
    assert set(result) == {"Warnings", "Total", "Platforms"}
    assert set(result["Total"]) == TOTAL_KEYS
    assert all(isinstance(result["Total"][k], int) for k in ("Tests", "Nodes"))
    assert result["Warnings"]
    for warning in result["Warnings"]:
        assert set(warning) == WARNING_KEYS
        assert warning["Category"] in ("html", "css")
        assert isinstance(warning["Tags"], list) and isinstance(warning["Keywords"], str)
        assert all(isinstance(v, str) for v in warning["NotesByNumber"].values())
        assert set(warning["Score"]) == SCORE_KEYS and warning["Score"]["Found"] >= 1
        assert warning["URL"].startswith("https://www.caniemail.com/features/")
        for client in warning["Results"]:
            assert set(client) == RESULT_KEYS
            assert client["Support"] in ("yes", "partial", "no")
            assert isinstance(client["NoteNumber"], str)
    json.dumps(result)  # JSON as it is


@pytest.mark.parametrize(
    ("html", "slug", "count"),
    [
        ("<div><div>x</div></div>", "html-div", 2),
        ("<h2>a</h2><h5>b</h5>", "html-h1-h6", 2),
        ("<article>a</article><nav>b</nav>", "html-semantics", 2),
        ("<ul><li>a</li></ul><dl></dl>", "html-lists", 2),
        ('<td align="center" valign="top">x</td>', "html-valign", 1),
        ('<p dir="rtl" lang="ar">x</p>', "html-dir", 1),
        ('<img src="a.png" srcset="a2.png 2x" sizes="50vw">', "html-srcset", 2),
        ('<span aria-hidden="true">x</span>', "html-aria-hidden", 1),
        ("<div inert>x</div>", "css-inert-attribute", 1),
        ('<input type="checkbox"><input type="CheckBox">', "html-input-checkbox", 2),
        ("<input name=q>", "html-input-text", 1),
        ("<button>Go</button>", "html-button-submit", 1),
        ('<button type="reset">R</button>', "html-button-reset", 1),
        ('<a href="#top">t</a>', "html-anchor-links", 1),
        ('<a href="MAILTO:x@example.com">m</a>', "html-mailto-links", 1),
        ("<!-- a --><p>x</p><!--[if mso]>o<![endif]-->", "html-comments", 2),
        ("<!doctype html><p>x</p>", "html-doctype", 1),
        ('<meta name="color-scheme" content="light dark">', "html-meta-color-scheme", 1),
        ('<img src="https://cdn.example/a.JPEG?v=2">', "image-jpg", 1),
        ('<img src="data:image/webp;base64,AAAA">', "image-webp", 1),
        ('<img src="data:image/png;base64,AAAA">', "image-base64", 1),
        ('<img src="x.svg">', "image-svg", 1),
        (
            '<p style="background-color: red; BACKGROUND-COLOR: blue">x</p>',
            "css-background-color",
            2,
        ),
        ("<style>p { font-weight: bold }</style>", "css-font-weight", 1),
        ('<p style="width: 1px">a</p><p style="width: 1px">b</p>', "css-width", 2),
        ('<p style="border-top-width: 1px">x</p>', "css-border", 1),
        ('<p style="margin-left: 0">x</p>', "css-margin", 1),
        ('<p style="animation-name: spin">x</p>', "css-animation", 1),
        ('<p style="-webkit-box-shadow: 0 0 1px red">x</p>', "css-box-shadow", 1),
        ('<div style="display: inline-flex">x</div>', "css-display-flex", 1),
        ('<div style="display:none">x</div>', "css-display-none", 1),
        ('<p style="background: linear-gradient(red, blue)">x</p>', "css-linear-gradient", 1),
        ('<p style="width: calc(100% - 2em)">x</p>', "css-unit-calc", 1),
        ('<p style="width: calc(100% - 2em)">x</p>', "css-unit-em", 1),
        ('<p style="width: calc(100% - 2em)">x</p>', "css-unit-percent", 1),
        ('<p style="padding: 1px 2px 3PX">x</p>', "css-unit-px", 3),
        ('<p style="font-size: 1.2rem">x</p>', "css-unit-rem", 1),
        ('<p style="color: initial">x</p>', "css-unit-initial", 1),
        ('<p style="font-family: system-ui, sans-serif">x</p>', "css-sytem-ui", 1),
        ('<p style="width: max-content">x</p>', "css-intrinsic-size", 1),
        ('<p style="color: oklch(70% 0.1 200)">x</p>', "css-modern-color", 1),
        ('<p style="color: red !important">x</p>', "css-important", 1),
        ("<style>:root { --brand: red } p { color: var(--brand) }</style>", "css-variables", 2),
        ("<style>/* a */ p { /* b */ color: red }</style>", "css-comments", 2),
        ("<style>@media screen { p { color: red } }</style>", "css-at-media", 1),
        ("<style>@font-face { font-family: X; src: url(x.woff) }</style>", "css-at-font-face", 1),
        ("<style>@import url(x.css);</style>", "css-at-import", 1),
        ("<style>@-webkit-keyframes s { from { opacity: 0 } }</style>", "css-at-keyframes", 1),
        ("<style>@keyframes s { from { opacity: 0 } to { opacity: 1 } }</style>", "css-opacity", 2),
        ("<style>@supports (display: grid) { p { color: red } }</style>", "css-at-supports", 1),
        (
            "<style>@media (prefers-color-scheme: dark) and (orientation: landscape) {}</style>",
            "css-at-media-prefers-color-scheme",
            1,
        ),
        (
            "<style>@media (-webkit-min-device-pixel-ratio: 2) {}</style>",
            "css-at-media-device-pixel-ratio",
            1,
        ),
        ("<style>@media (any-hover: hover) {}</style>", "css-at-media-hover", 1),
        ("<style>.a { color: red } .b.c { color: blue }</style>", "css-selector-class", 3),
        ("<style>.b.c, p#d { color: blue }</style>", "css-selector-chaining", 2),
        ("<style>#main { color: red }</style>", "css-selector-id", 1),
        ("<style>p, td { color: red }</style>", "css-selector-grouping", 1),
        ("<style>p, td { color: red }</style>", "css-selector-type", 2),
        ("<style>* { margin: 0 }</style>", "css-selector-universal", 1),
        ('<style>a[href^="tel"] { color: red }</style>', "css-selector-attribute", 1),
        ("<style>ul > li { color: red }</style>", "css-selector-child", 1),
        ("<style>h1 + p { color: red }</style>", "css-selector-adjacent-sibling", 1),
        ("<style>h1 ~ p { color: red }</style>", "css-selector-general-sibling", 1),
        ("<style>table td a { color: red }</style>", "css-selector-descendant", 2),
        ("<style>a:hover, a:HOVER { color: red }</style>", "css-pseudo-class-hover", 2),
        ("<style>li:nth-child(2n) { color: red }</style>", "css-pseudo-class-nth-child", 1),
        ("<style>p:not(.x) { color: red }</style>", "css-pseudo-class-not", 1),
        ("<style>p::before { content: 'x' }</style>", "css-pseudo-element-before", 1),
        ("<style>p:after { content: 'x' }</style>", "css-pseudo-element-after", 1),
        ("<style>.card { color: red; & p { color: blue } }</style>", "css-nesting", 1),
    ],
)
def test_feature_found_and_counted(html: str, slug: str, count: int) -> None:
    """Each kind of HTML and CSS use is found under its caniemail feature, counted per use."""
    assert found(html).get(slug) == count


@pytest.mark.parametrize(
    ("html", "slug"),
    [
        ("<p>Use display: flex and @media queries</p>", "css-display-flex"),
        ("<p>Use display: flex and @media queries</p>", "css-at-media"),
        ("<p>&lt;video&gt; is not an element here</p>", "html-video"),
        ("<style>@font-face { font-family: X; font-weight: bold }</style>", "css-font-weight"),
        ("<style>@keyframes s { 50% { opacity: 0 } }</style>", "css-unit-percent"),
        ("<style>@keyframes s { from { opacity: 0 } }</style>", "css-selector-type"),
        ("<style>p { color: red }</style>", "css-selector-descendant"),
        ('<a href="https://example.com/#top">x</a>', "html-anchor-links"),
    ],
)
def test_text_and_descriptors_are_not_features(html: str, slug: str) -> None:
    """Words in text, @font-face descriptors and keyframe selectors are not counted."""
    assert slug not in found(html)


def test_results_and_score_follow_the_data() -> None:
    """Results are the data's clients with known support; the score is their share by kind."""
    result = check_html("<p>x</p><!-- note -->")
    warning = next(w for w in result["Warnings"] if w["Slug"] == "html-comments")
    feature = caniemail.load().features["html-comments"]
    assert len(warning["Results"]) == len(feature.clients)
    kinds = [r["Support"] for r in warning["Results"]]
    total = len(kinds)
    assert warning["Score"] == {
        "Found": 1,
        "Supported": round(100 * kinds.count("yes") / total, 2),
        "Partial": round(100 * kinds.count("partial") / total, 2),
        "Unsupported": round(100 * kinds.count("no") / total, 2),
    }
    gmail = next(r for r in warning["Results"] if r["Family"] == "gmail")
    assert gmail["Name"].startswith("Gmail ") and gmail["Name"].endswith(f"({gmail['Version']})")


@pytest.mark.parametrize(
    ("value", "support", "notes"),
    [("y", "yes", ()), ("n #2", "no", ("2",)), ("a #1 #3", "partial", ("1", "3")), ("u", None, ())],
)
def test_support_values_of_the_data(
    value: str, support: str | None, notes: tuple[str, ...]
) -> None:
    """caniemail's y / n / a (partial) / u (unknown) with their note numbers."""
    assert caniemail.parse_support(value) == (support, notes)


def test_note_numbers_point_at_notes() -> None:
    """A partly supported client carries its (first) note number, present in NotesByNumber."""
    warnings = check_html('<p style="margin: 0">x</p>')["Warnings"]
    noted = [(w, r) for w in warnings for r in w["Results"] if r["NoteNumber"]]
    assert noted
    assert all(r["NoteNumber"] in w["NotesByNumber"] for w, r in noted)


def test_unknown_support_left_out() -> None:
    """Clients whose support caniemail does not know are not among the results."""
    data = caniemail.load()
    raw = json.loads((CHECKS / caniemail.DATA_FILE).read_text(encoding="utf-8"))
    entry = next(e for e in raw["data"] if "u" in _values(e["stats"]))
    known = [v for v in _values(entry["stats"]) if not v.startswith("u")]
    assert len(data.features[entry["slug"]].clients) == len(known)


def _values(stats: dict[str, Any]) -> list[str]:
    """Every support value of a feature's stats."""
    return [v for by_platform in stats.values() for by_version in by_platform.values()
            for v in by_version.values()]  # fmt: skip


def test_totals_weigh_the_worst_feature_by_use() -> None:
    """Total: nodes without html/head/meta; partial and unsupported are the worst feature's
    percentage times its uses per node; supported is the rest."""
    result = check_html(NEWSLETTER)
    total, warnings = result["Total"], result["Warnings"]
    assert total["Nodes"] == 7  # title, style, body, div, p, a, img: not html, head, meta
    assert total["Tests"] == len(features.catalogue().detected)
    nodes = total["Nodes"]
    partial = max(w["Score"]["Partial"] * w["Score"]["Found"] / nodes for w in warnings)
    unsupported = max(w["Score"]["Unsupported"] * w["Score"]["Found"] / nodes for w in warnings)
    assert total["Partial"] == round(partial, 2)
    assert total["Unsupported"] == round(unsupported, 2)
    assert total["Supported"] == round(100 - partial - unsupported, 2)


def test_worst_features_first() -> None:
    """Warnings are ordered by how much of the document fails."""
    warnings = check_html(NEWSLETTER)["Warnings"]
    bad = [
        (w["Score"]["Partial"] + w["Score"]["Unsupported"]) * w["Score"]["Found"] for w in warnings
    ]
    assert bad == sorted(bad, reverse=True)


def test_fully_supported_document_scores_100() -> None:
    """Only features every client supports: 100 % supported."""
    total = check_html("<div><p>Plain</p></div>")["Total"]
    assert (total["Supported"], total["Partial"], total["Unsupported"]) == (100.0, 0.0, 0.0)


def test_heavy_use_never_goes_past_100_percent() -> None:
    """A feature used more often than there are nodes still weighs at most 100 %."""
    styles = "<style>" + "a:hover { color: red }" * 50 + "</style><p>x</p>"
    total = check_html(styles)["Total"]
    assert 0.0 <= total["Supported"] <= 100.0
    assert total["Partial"] + total["Unsupported"] <= 100.0


def test_platform_filter_keeps_and_rescores_one_platform() -> None:
    """filter_platforms keeps only the chosen platforms' clients and scores them again."""
    result = check_html(NEWSLETTER)
    windows = filter_platforms(result, ["windows"])
    for warning in windows["Warnings"]:
        assert {r["Platform"] for r in warning["Results"]} <= {"windows"}
        kinds = [r["Support"] for r in warning["Results"]]
        if kinds:
            assert warning["Score"]["Unsupported"] == round(100 * kinds.count("no") / len(kinds), 2)
    assert windows["Total"]["Nodes"] == result["Total"]["Nodes"]
    assert windows["Total"] != result["Total"]
    assert filter_platforms(result, []) == result


def test_platforms_list_families_per_platform() -> None:
    """Each platform with the sorted readable names of the families tested on it."""
    listed = platforms()
    assert "Outlook" in listed["windows"] and "Gmail" in listed["android"]
    assert all(names == sorted(names) for names in listed.values())
    assert check_html("<p>x</p>")["Platforms"] == listed


@pytest.mark.parametrize(
    "html",
    [
        "",
        "plain text, no tags",
        "<p><b>unclosed <i>tags",
        "<div style='color: ; : ; {{{'>x</div><style>p { color: red</style>",
        "<style>@media (",
        "<img src='http://[bad'><a href>x</a><<<>>>",
    ],
)
def test_malformed_html_and_css_do_not_raise(html: str) -> None:
    """Broken HTML and CSS still get an answer."""
    assert set(check_html(html)) == {"Warnings", "Total", "Platforms"}


def test_every_feature_of_the_data_is_looked_for() -> None:
    """Every slug of the shipped data is detected, except those no HTML body can show."""
    slugs = set(caniemail.load().features)
    assert slugs - features.catalogue().detected == set(features.NOT_IN_HTML)


def test_data_and_licence_are_package_data() -> None:
    """The data file and its MIT licence sit in the package and pyproject ships both."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["relay.checks"]
    assert {caniemail.DATA_FILE, caniemail.LICENCE_FILE} <= set(shipped)
    licence = (CHECKS / caniemail.LICENCE_FILE).read_text(encoding="utf-8")
    assert "MIT License" in licence and "HTeuMeuLeu" in licence


def _npm_package(directory: Path, licence: str = "MIT") -> Path:
    """An unpacked npm `caniemail` package made from the shipped data."""
    (directory / "data").mkdir(parents=True)
    shutil.copy(CHECKS / caniemail.DATA_FILE, directory / "data" / caniemail.DATA_FILE)
    manifest = {"name": "caniemail", "version": "9.9.9", "license": licence}
    (directory / "package.json").write_text(json.dumps(manifest), encoding="utf-8")
    (directory / "LICENSE").write_text("MIT License\n\nCopyright (c) someone\n", encoding="utf-8")
    return directory


def test_refresh_writes_trimmed_data_and_licence(tmp_path: Path) -> None:
    """`make caniemail`'s step: the package's data, trimmed, one feature a line, and licence."""
    package, target = _npm_package(tmp_path / "package"), tmp_path / "out"
    target.mkdir()
    caniemail.refresh(package, target)
    text = (target / caniemail.DATA_FILE).read_text(encoding="utf-8")
    refreshed = caniemail.parse(json.loads(text))
    assert refreshed.features == caniemail.load().features
    assert json.loads(text)["package"] == "caniemail 9.9.9"
    assert text.count("\n") > len(refreshed.features)
    assert "caniemail 9.9.9" in (target / caniemail.LICENCE_FILE).read_text(encoding="utf-8")


def test_refresh_refuses_a_changed_licence(tmp_path: Path) -> None:
    """A package whose licence is no longer MIT is not taken."""
    package = _npm_package(tmp_path / "package", licence="SEE LICENSE IN x")
    with pytest.raises(SystemExit, match="no longer MIT"):
        caniemail.refresh(package, tmp_path)

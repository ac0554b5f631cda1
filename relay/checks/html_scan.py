"""Count the caniemail features of an HTML body with the standard library's `html.parser`.

Elements, attributes, typed inputs and buttons, comments, the doctype, local and mailto
links, the color-scheme meta tag and image formats (by the `src` of each `<img>`) are
counted here; the CSS of `<style>` elements and `style` attributes goes to `CssScan`.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from relay.checks import features as f
from relay.checks.css_scan import CssScan

NOT_NODES = frozenset({"html", "head", "meta"})
"""Elements that every document has or that show nothing: left out of the node count."""
DOCTYPE_HTML5 = ["doctype", "html"]


@dataclass(frozen=True)
class HtmlScanResult:
    """How often each feature was found, and how many element nodes the HTML has."""

    found: Counter[str]
    nodes: int


class _Scanner(HTMLParser):
    def __init__(self, catalogue: f.Catalogue) -> None:
        super().__init__(convert_charrefs=True)
        self.cat = catalogue
        self.found: Counter[str] = Counter()
        self.css = CssScan(catalogue, self.found)
        self.nodes = 0
        self.style: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in NOT_NODES:
            self.nodes += 1
        slug = self.cat.elements.get(tag)
        if slug is not None:
            self.found[slug] += 1
        values = {name: value or "" for name, value in attrs}
        if tag in f.DEFAULT_TYPES:
            kind = values.get("type", "").strip().lower() or f.DEFAULT_TYPES[tag]
            typed = f.TYPED_ELEMENTS.get((tag, kind))
            if typed is not None:
                self.found[typed] += 1
        for name, value in attrs:
            slug = self.cat.attributes.get(name)
            if slug is not None:
                self.found[slug] += 1
            if name == "style" and value:
                self.css.style_attribute(value)
        self._special(tag, values)
        if tag == "style":
            self.style = []

    def _special(self, tag: str, values: dict[str, str]) -> None:
        if tag == "a":
            href = values.get("href", "").strip().lower()
            if href.startswith("#"):
                self.found[f.ANCHOR_LINKS] += 1
            elif href.startswith("mailto:"):
                self.found[f.MAILTO_LINKS] += 1
        elif tag == "meta" and values.get("name", "").strip().lower() == "color-scheme":
            self.found[f.META_COLOR_SCHEME] += 1
        elif tag == "img" and values.get("src"):
            for slug in image_features(values["src"]):
                self.found[slug] += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.style is not None:
            self.style.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self.style is not None:
            self.css.stylesheet("".join(self.style))
            self.style = None

    def handle_comment(self, data: str) -> None:
        self.found[f.COMMENTS_HTML] += 1

    def handle_decl(self, decl: str) -> None:
        if decl.lower().split() == DOCTYPE_HTML5:
            self.found[f.DOCTYPE] += 1


def image_features(src: str) -> list[str]:
    """The image-format features of an `<img src>`: by `data:image/TYPE` or the extension."""
    src = src.strip()
    if src[:5].lower() == "data:":
        media_type, _, _data = src[5:].partition(",")
        kind = media_type.split(";")[0].strip().lower().removeprefix("image/")
        found = [f.IMAGE_TYPES[kind]] if kind in f.IMAGE_TYPES else []
        return found + ([f.BASE64_IMAGE] if ";base64" in media_type.lower() else [])
    try:
        path = urlsplit(src).path
    except ValueError:  # not a URL at all ("http://[")
        return []
    extension = posixpath.splitext(path)[1].lower().removeprefix(".")
    return [f.IMAGE_TYPES[extension]] if extension in f.IMAGE_TYPES else []


def scan_html(html: str) -> HtmlScanResult:
    """Count the features of `html` (a whole document or a fragment)."""
    scanner = _Scanner(f.catalogue())
    scanner.feed(html)
    scanner.close()
    if scanner.style is not None:  # a <style> left open at the end
        scanner.handle_endtag("style")
    return HtmlScanResult(scanner.found, scanner.nodes)

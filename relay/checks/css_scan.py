"""Count the caniemail CSS features in style sheets and `style` attributes, parsed by tinycss2.

Each use counts once: a declaration for its property, a unit, function or keyword in its
value for theirs, a selector part for its selector feature, an at-rule or media feature for
its own. Descriptors inside @font-face and keyframe selectors are not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import tinycss2
import tinycss2.ast as css

from relay.checks import features as f

COMBINATORS = {">": "child", "+": "adjacent-sibling", "~": "general-sibling"}
"""A combinator's character → the end of its `css-selector-` slug."""
GROUPS = frozenset({"media", "supports", "document", "layer", "container"})
"""At-rules whose block holds rules (and, nested in a style rule, declarations)."""
LOGIC_WORDS = frozenset({"and", "or", "not", "only"})


class CssScan:
    """Adds the features of the CSS it is given to `found`."""

    def __init__(self, catalogue: f.Catalogue, found: Counter[str]) -> None:
        self.cat = catalogue
        self.found = found
        self._attributes: dict[str, Counter[str]] = {}  # a style attribute's text → its features

    def stylesheet(self, text: str) -> None:
        """Count the features of a style sheet (the text of a `<style>` element)."""
        self._nodes(tinycss2.parse_stylesheet(text, skip_comments=False, skip_whitespace=True))

    def style_attribute(self, text: str) -> None:
        """Count the features of a `style` attribute's declarations (the same text, often
        repeated in generated mail, is parsed once)."""
        if text not in self._attributes:
            own = CssScan(self.cat, Counter())
            own._nodes(_contents(text))
            self._attributes[text] = own.found
        self.found.update(self._attributes[text])

    def _nodes(self, nodes: Iterable[Any], in_rule: bool = False) -> None:
        for node in nodes:
            if isinstance(node, css.Comment):
                self.found[f.COMMENTS_CSS] += 1
            elif isinstance(node, css.Declaration):
                self._declaration(node)
            elif isinstance(node, css.QualifiedRule):
                if in_rule:
                    self.found[f.NESTING] += 1
                self._selectors(node.prelude)
                self._nodes(_contents(node.content), in_rule=True)
            elif isinstance(node, css.AtRule):
                self._at_rule(node, in_rule)

    def _at_rule(self, rule: css.AtRule, in_rule: bool) -> None:
        name = f.unprefixed(rule.lower_at_keyword)
        if name in self.cat.at_rules:
            self.found[self.cat.at_rules[name]] += 1
        if name == "media":
            self._media_features(rule.prelude)
        if rule.content is None:
            return
        if name in GROUPS:
            self._nodes(_contents(rule.content), in_rule)
        elif name == "keyframes":
            for frame in tinycss2.parse_rule_list(rule.content, skip_whitespace=True):
                if isinstance(frame, css.QualifiedRule):
                    self._nodes(_contents(frame.content), in_rule=True)

    def _media_features(self, tokens: Iterable[Any]) -> None:
        for token in tokens:
            if not isinstance(token, css.ParenthesesBlock):
                continue
            first = next((t for t in token.content if not isinstance(t, css.WhitespaceToken)), None)
            if isinstance(first, css.IdentToken) and first.lower_value not in LOGIC_WORDS:
                name = f.unprefixed(first.lower_value).removeprefix("min-").removeprefix("max-")
                if name in self.cat.media_features:
                    self.found[self.cat.media_features[name]] += 1
            self._media_features(token.content)

    def _declaration(self, node: css.Declaration) -> None:
        if node.name.startswith("--"):
            self.found[f.VARIABLES] += 1
            return
        name = f.unprefixed(node.lower_name)
        slug = self.cat.property_slug(name)
        if slug is not None:
            self.found[slug] += 1
        if node.important:
            self.found[f.IMPORTANT] += 1
        self._values(name, node.value)

    def _values(self, prop: str, tokens: Iterable[Any]) -> None:
        for token in tokens:
            slug: str | None = None
            if isinstance(token, css.IdentToken):
                word = token.lower_value
                slug = f.VALUES.get((prop, word)) or f.KEYWORDS.get(f.unprefixed(word))
            elif isinstance(token, css.DimensionToken):
                slug = self.cat.units.get(token.lower_unit)
            elif isinstance(token, css.PercentageToken):
                slug = f.PERCENT
            elif isinstance(token, css.FunctionBlock):
                slug = f.FUNCTIONS.get(f.unprefixed(token.lower_name))
                self._values(prop, token.arguments)
            elif isinstance(token, (css.ParenthesesBlock, css.SquareBracketsBlock)):
                self._values(prop, token.content)
            if slug is not None:
                self.found[slug] += 1

    def _selectors(self, prelude: list[Any]) -> None:
        _SelectorWalk(self.cat, self.found).walk(prelude)


def _contents(tokens: list[Any] | str | None) -> list[Any]:
    """The declarations and rules of a block (its tokens, or the text of a style attribute)."""
    if not tokens:
        return []
    return list(tinycss2.parse_blocks_contents(tokens, skip_comments=False, skip_whitespace=True))


class _SelectorWalk:
    """Counts the selector features of a rule's prelude: its simple selectors, combinators,
    groups, chained compounds, pseudo-classes and pseudo-elements."""

    def __init__(self, catalogue: f.Catalogue, found: Counter[str]) -> None:
        self.cat = catalogue
        self.found = found
        self.compound = 0  # type, class, id and attribute selectors in the current compound
        self.in_compound = False
        self.space = False

    def count(self, kind: str) -> None:
        """Count one `css-selector-KIND`."""
        self.found[f.SELECTOR + kind] += 1

    def end_compound(self) -> None:
        """A compound selector ends: it is chained when it has more than one simple part."""
        if self.compound > 1:
            self.count("chaining")
        self.compound = 0
        self.in_compound = False
        self.space = False

    def walk(self, tokens: list[Any]) -> None:
        """Walk the tokens of one selector list."""
        index = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            if isinstance(token, css.WhitespaceToken):
                self.space = self.in_compound
            elif isinstance(token, css.LiteralToken) and token.value == ",":
                self.end_compound()
                self.count("grouping")
            elif isinstance(token, css.LiteralToken) and token.value in COMBINATORS:
                self.end_compound()
                self.count(COMBINATORS[token.value])
            else:
                if self.space:
                    self.end_compound()
                    self.count("descendant")
                self.in_compound = True
                index = self.simple(tokens, index - 1)
        self.end_compound()

    def simple(self, tokens: list[Any], index: int) -> int:
        """Count the simple selector at `index`; returns the index after it."""
        token = tokens[index]
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if isinstance(token, css.LiteralToken) and token.value == ":":
            return self.pseudo(tokens, index + 1)
        kind = None
        if isinstance(token, css.LiteralToken) and token.value == "." and after is not None:
            kind, index = "class", index + 1
        elif isinstance(token, css.HashToken):
            kind = "id"
        elif isinstance(token, css.IdentToken):
            kind = "type"
        elif isinstance(token, css.SquareBracketsBlock):
            kind = "attribute"
        elif isinstance(token, css.LiteralToken) and token.value == "*":
            self.count("universal")
        if kind is not None:
            self.count(kind)
            self.compound += 1
        return index + 1

    def pseudo(self, tokens: list[Any], index: int) -> int:
        """Count a pseudo-class or pseudo-element whose name starts at `index`."""
        element = False
        if index < len(tokens) and isinstance(tokens[index], css.LiteralToken):
            element, index = tokens[index].value == ":", index + 1
        if index >= len(tokens):
            return index
        token = tokens[index]
        if isinstance(token, css.IdentToken):
            name = token.lower_value
        elif isinstance(token, css.FunctionBlock):
            name = token.lower_name
        else:
            return index + 1
        element = element or name in f.LEGACY_PSEUDO_ELEMENTS
        table = self.cat.pseudo_elements if element else self.cat.pseudo_classes
        if name in table:
            self.found[table[name]] += 1
        return index + 1

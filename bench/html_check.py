"""How long the HTML compatibility check takes on large HTML bodies.

    python -m bench.html_check                 # 100 KB, 1 MB and 4 MB newsletters
    python -m bench.html_check --sizes 1000000 --runs 3

Each body is a table-laid newsletter as mail tools generate it: rows of cells with inline
styles, links and images, and a `<style>` block with media queries. Every row's styles
differ (its numbers change), so the check parses each style attribute afresh, as it must
for hand-written mail; generated mail that repeats its styles is faster. Prints the
median time of `check_html` and how many nodes and features it found.
"""

from __future__ import annotations

import argparse
import statistics
import time

from relay.checks.html_compat import check_html

HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
@media (max-width: 600px) { .col { width: 100% !important; display: block } }
@media (prefers-color-scheme: dark) { body, .col { background: #111 !important } }
a:hover { text-decoration: underline } .col + .col { border-left: 1px solid #eee }
</style></head><body><table role="presentation" cellpadding="0" cellspacing="0" width="100%">
"""
ROW = """<tr><td class="col" align="left" valign="top" style="padding: {a}px {b}px;
font-family: Arial, sans-serif; font-size: {c}px; line-height: 1.5; color: #{d:06x};
background-color: #ffffff; border-bottom: 1px solid #eeeeee"><a href="https://shop.example/p/{n}"
style="color: #0066cc; text-decoration: none; font-weight: {w}">Product {n}</a>
<img src="https://cdn.example/i/{n}.png" width="120" height="80" alt="" style="display: block;
border: 0; max-width: {m}%"><p style="margin: 0 0 {a}px 0">Some words about product {n}, long
enough to read like a description in a real newsletter.</p></td></tr>
"""
TAIL = "</table></body></html>"


def newsletter(size: int) -> str:
    """A newsletter body of about `size` characters whose rows' styles all differ."""
    rows = []
    length, n = len(HEAD) + len(TAIL), 0
    while length < size:
        row = ROW.format(a=n % 40, b=n % 30, c=10 + n % 9, d=n * 7919 % 0xFFFFFF, n=n,
                         w=100 * (1 + n % 9), m=50 + n % 50)  # fmt: skip
        rows.append(row)
        length += len(row)
        n += 1
    return HEAD + "".join(rows) + TAIL


def main() -> None:
    """Print the median time of the check for each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,4000000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    check_html("<p>warm-up: loads the data set</p>")
    print(f"{'size':>10} {'nodes':>7} {'features':>8} {'median':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        html = newsletter(size)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = check_html(html)
            times.append(time.perf_counter() - started)
        print(
            f"{len(html):>10,} {result['Total']['Nodes']:>7,} {len(result['Warnings']):>8} "
            f"{statistics.median(times):>8.3f}s"
        )


if __name__ == "__main__":
    main()

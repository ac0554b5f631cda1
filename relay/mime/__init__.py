"""Raw message bytes → what people and lists see of them (pure: no I/O, no event loop).

structure.py finds the parts without decoding them; view.py decodes a message for its
page and its downloads; summary.py makes the few fields of the list row; headers.py,
charsets.py, jis.py and htmltext.py decode header words, bodies and HTML. Callers that
read large messages run these in relay.offload's threads.
"""

from relay.mime import charsets, headers, htmltext, jis, structure, summary, view

__all__ = ["charsets", "headers", "htmltext", "jis", "structure", "summary", "view"]

"""relay's pytest plugin: a relay for the test session, a mailbox for each test.

`pip install relay` registers it with pytest (the `pytest11` entry point names
`relay.testing.plugin`); docs/testing.md shows it at work.

    plugin.py   the command-line options and the `relay_server` and `mailbox` fixtures
    server.py   a relay started for the session (a subprocess on free ports), or one running
    client.py   a small client of relay's HTTP API (the standard library's urllib)
    mailbox.py  addresses unique to one test, its mail, its own chaos rules
    message.py  a received message: subject, addresses, bodies, headers, attachments, links

Importing the plugin imports none of the server's libraries and starts nothing; a
fixture does that when a test first asks for it. Nothing here imports web/.
"""

from __future__ import annotations

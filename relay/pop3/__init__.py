"""POP3 (RFC 1939, RFC 2449, RFC 2595, RFC 5034): captured mail read back by mail clients.

    server.py    one pop3 / pop3s listener: its port, its sessions, their limit, stop
    session.py   one session: lines in, the states (AUTHORIZATION, TRANSACTION, UPDATE)
    login.py     USER/PASS and AUTH PLAIN: the checks shared with SMTP AUTH, the lock
    maildrop.py  the messages of one session: numbers, sizes, UIDLs, marks for deletion
    wire.py      messages as POP3 sends them: CRLF, dot-stuffed, TOP's head (pure)
    replies.py   every reply as a named constant

Like relay/smtp/ and relay/delivery/, it meets the rest of relay only in the store: it
reads a mailbox (`relay.store.mailboxes`) and removes what a session deleted, in one
transaction, when the session ends with QUIT.
"""

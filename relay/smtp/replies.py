"""SMTP replies as named constants (RFC 5321 codes, RFC 3463 enhanced status codes)."""

from __future__ import annotations

from types import MappingProxyType

MAIL_OK = "250 2.1.0 OK"
RCPT_OK = "250 2.1.5 OK"
RCPT_REJECTED = "550 5.7.1 Recipient rejected by this server's routing policy"
QUEUED = "250 2.0.0 OK: queued as {id}"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
STORE_FAILED = "451 4.3.0 Requested action aborted: local storage error, try again later"
LOCAL_ERROR = "451 4.3.0 Requested action aborted: local error in processing"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# Limits (RFC 1870, RFC 5321 §4.5.3.1)
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TIMEOUT = "421 4.4.2 Timeout waiting for the client, closing connection"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 5.5.2 Line too long"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
EHLO_SYNTAX = "501 5.5.4 Syntax: EHLO hostname"

# Addresses (RFC 5321 §4.1.2, RFC 3463)
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"

# Relay policy (RFC 5321 §3.6.2, RFC 7372)
RELAY_DENIED = "554 5.7.1 Relay access denied: authenticate or send from a trusted network"
RECIPIENT_REJECTED = "550 5.7.1 Recipient rejected by policy"

# TLS and AUTH (RFC 3207, RFC 4954)
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
TLS_ALREADY_ACTIVE = "503 5.5.1 TLS already active"
STARTTLS_PIPELINED = "554 5.5.1 STARTTLS must end a pipelined group of commands (RFC 3207)"
TLS_HANDSHAKE_FAILED = "454 4.7.0 TLS handshake failed"  # the connection is closed after
AUTH_NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_REQUIRED = "530 5.7.0 Authentication required"  # aiosmtpd's own, already enhanced

AIOSMTPD_REPLIES = MappingProxyType(
    {
        "530 Must issue a STARTTLS command first": STARTTLS_FIRST,
        "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
        "500 Command line too long": "500 5.5.2 Command line too long",
        "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
        "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
        "554 Command refused due to lack of security": "554 5.7.0 TLS handshake not accepted",
    }
)
"""Fixed replies of aiosmtpd's own commands, given the enhanced status code they lack."""

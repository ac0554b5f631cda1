"""Every POP3 reply as a named constant (RFC 1939; response codes of RFC 2449 and 3206).

Each ends without CRLF; the session adds it. Replies that carry values are format
strings, filled with `%`.
"""

from __future__ import annotations

GREETING = "+OK relay POP3 server ready"
BYE = "+OK relay POP3 server signing off"
BYE_REMOVED = "+OK relay POP3 server signing off (%d messages deleted)"
OK = "+OK"
CAPA = "+OK capability list follows"
STLS_GO = "+OK begin TLS negotiation"
USER_OK = "+OK send PASS"
LOGGED_IN = "+OK maildrop has %d messages (%d octets)"
STAT = "+OK %d %d"
SCAN_LISTING = "+OK %d %d"
UIDL_LISTING = "+OK %d %s"
LIST_FOLLOWS = "+OK %d messages (%d octets)"
UIDL_FOLLOWS = "+OK unique-id listing follows"
RETR_FOLLOWS = "+OK %d octets"
TOP_FOLLOWS = "+OK top of message follows"
DELETED = "+OK message %d deleted"
RSET = "+OK maildrop has %d messages (%d octets)"
AUTH_CONTINUE = "+ "

UNKNOWN = "-ERR unknown command"
WRONG_STATE = "-ERR command not valid in this state"
BAD_ARGUMENTS = "-ERR bad arguments: %s"
LINE_TOO_LONG = "-ERR line too long (at most 512 octets)"
BAD_LINE = "-ERR command line is not ASCII"
NO_SUCH_MESSAGE = "-ERR no such message"
ALREADY_DELETED = "-ERR message %d already deleted"
GONE = "-ERR message %d is no longer in the store"
USER_FIRST = "-ERR send USER first"
INSECURE = "-ERR [AUTH] log in after STLS (the connection is not encrypted)"
BAD_LOGIN = "-ERR [AUTH] invalid user name or password"
IN_USE = "-ERR [IN-USE] mailbox in use by another session, try again later"
UNSUPPORTED_MECHANISM = "-ERR [AUTH] unsupported mechanism (PLAIN only)"
BAD_SASL = "-ERR [AUTH] malformed AUTH PLAIN response"
AUTH_CANCELLED = "-ERR [AUTH] authentication cancelled"
NO_TLS = "-ERR STLS not available here"
ALREADY_TLS = "-ERR already using TLS"
TLS_FIRST = "-ERR [AUTH] STLS first: this listener asks for TLS"
STORE_FAILED = "-ERR [SYS/TEMP] the store could not be read or written, try again later"
TOO_MANY = "-ERR [SYS/TEMP] too many connections, try again later"
SHUTTING_DOWN = "-ERR [SYS/TEMP] server shutting down"
IDLE_TIMEOUT = "-ERR [SYS/TEMP] idle for too long, closing"

CAPABILITIES = ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")
"""What CAPA always lists (RFC 2449); USER, SASL PLAIN and STLS depend on the state."""
IMPLEMENTATION = "IMPLEMENTATION relay"

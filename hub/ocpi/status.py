"""OCPI 2.2.1 status codes (status_codes.asciidoc), the one list every module uses."""

from enum import IntEnum


class OcpiStatus(IntEnum):
    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    CLIENT_API_UNUSABLE = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003
    HUB_ERROR = 4000
    UNKNOWN_RECEIVER = 4001
    FORWARD_TIMEOUT = 4002
    CONNECTION_PROBLEM = 4003


#: HTTP statuses with which a partner refuses the credentials it was called with (the hub's
#: token): a real-time caller gets 4003 instead, and ``/metrics`` counts them per partner.
CREDENTIALS_REFUSED_HTTP = frozenset({401, 403})

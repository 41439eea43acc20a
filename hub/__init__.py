"""ChargeIndia Hub: an OCPI 2.2.1 roaming hub (role HUB, IN/CIH).

`hub` holds the domain and the application: configuration, the OCPI vocabulary
(models, status codes, envelope, pagination), the event-sourced application,
routing, security and the `hub` command. It imports none of `handlers`,
`projections` or `scheduler`; the CLI and WSGI wiring load them lazily.
"""

__version__ = "0.1.0"

HUB_COUNTRY_CODE = "IN"
HUB_PARTY_ID = "CIH"
HUB_NAME = "ChargeIndia Hub"
OCPI_VERSION = "2.2.1"

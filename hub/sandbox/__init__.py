"""The sandbox: simulated OCPI 2.2.1 partners (CPOs and eMSPs) with Indian data.

``hub sandbox`` (:mod:`hub.entrypoints.cli.sandbox`) starts them against a hub
and registers them through the real credentials handshake. This package talks
to the hub only over HTTP, as a real partner does: it may import ``hub.ocpi``
(models, the envelope) but never the hub's services, database or handlers.

- :mod:`.data`: Locations, Tariffs, Tokens, Sessions and CDRs from Indian cities;
- :mod:`.faults`: the fault modes a partner can be switched into at run time;
- :mod:`.partner`: one partner's OCPI server (its versions, details and modules);
- :mod:`.client`: what a partner sends the hub (handshake, pushes, authorization);
- :mod:`.commands`: a CPO answering commands and POSTing their results;
- :mod:`.control`: the small control HTTP API on 127.0.0.1 and its client;
- :mod:`.runner`: the set of partners and their activity over time.
"""

"""Domain aggregates and events: what happened, named in OCPI terms."""

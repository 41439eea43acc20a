"""``hub parties check``: a conformance probe of a registered partner (docs/operations.md
"Checking a partner before it goes live"). :mod:`.expectations` says which interfaces a role
offers (from :mod:`hub.domain.modules`), :mod:`.probe` calls the partner and judges its answers,
:mod:`.samples` holds the test objects of ``--write``. The operator entry point is
:func:`hub.services.operators.check.check`."""

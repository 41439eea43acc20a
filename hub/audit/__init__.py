"""Reading the audit trail (``hub audit``): the event log is the audit trail.

- :mod:`hub.audit.records`: one event as a plain, redacted record (no secrets leave).
- :mod:`hub.audit.events`: the scan of ``hub_events`` every read shares (:class:`EventReader`).
- :mod:`hub.audit.export`: ``hub audit export`` (:class:`Filters`, :class:`AuditExport`).
- :mod:`hub.audit.timeline`: records as readable steps.
- :mod:`hub.audit.history`: ``trace``, ``history`` and ``state`` (:class:`AuditLog`, the whole API).
- :mod:`hub.audit.proof`: CDR proofs against the hash chain.
"""

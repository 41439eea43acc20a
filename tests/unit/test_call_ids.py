"""Call records' ids: unique even when something seeds the ``random`` module (as hypothesis does)."""

from __future__ import annotations

import random

from hub.domain.audit import Call


def test_seeding_random_does_not_repeat_call_ids():
    random.seed(7)
    first = Call.create_id()
    random.seed(7)
    second = Call.create_id()
    assert first != second
    assert first.version == 4 and second.version == 4

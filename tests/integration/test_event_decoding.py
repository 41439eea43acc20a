"""The followers' decoder (hub/infra/decoding.py) gives the mapper's events and the same views.

Table-driven over the recorded logs of test_projection_batches (every event type of
every projection, plus the requests and calls the dispatchers read), with pushes
added whose JSON the fast path must not take: a ``Decimal`` inside a body (a typed
value below the top level), integers of 19 and 30 digits (orjson would read them as
floats), the text ``"_type_"`` in a body. Each stored event is decoded by the
mapper and by the decoder: same class, same attributes, same key order. Then each
projection's tables are built once with the decoder and once with the mapper alone:
row for row the same.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Mapper, StoredEvent

from hub.domain import objects as o
from hub.infra.decoding import EventDecoder
from hub.infra.eventlog import EventLog
from hub.services.application import Hub
from projections import all_projections
from tests import ocpi_examples as ex
from tests.integration.test_projection_batches import SEEDS, message, record, views

# What the fast path must hand to the mapper: a typed value below the top level, a long
# integer, the text "_type_".
MAPPER_ONLY = (b'"decimal_str"', b"1234567890123456789", b'"name":"_type_"')


def record_awkward(app: Hub) -> None:
    """Pushes the fast path must leave to the mapper, and one it must take despite a typed look."""
    location = o.Location("IN", "ECP", "ODD1", ex.location(id="ODD1", last_updated="2026-03-02T00:00:00Z"),
                          message("PUT", "ODD1"))
    location.patch({"name": "_type_", "last_updated": "2026-03-02T00:01:00Z"}, message("PATCH", "ODD1"))
    location.patch({"max_id": 1234567890123456789, "last_updated": "2026-03-02T00:02:00Z"}, message("PATCH", "x"))
    location.patch({"max_id": 123456789012345678901234567890, "last_updated": "2026-03-02T00:03:00Z"},
                   message("PATCH", "x"))
    session = o.Session("IN", "ECP", "ODD2", ex.session(id="ODD2", last_updated="2026-03-02T00:00:00Z"),
                        message("PUT", "ODD2"))
    session.patch({"kwh": Decimal("3.50"), "last_updated": "2026-03-02T00:04:00Z"}, message("PATCH", "ODD2"))
    app.save(location, session)


def stored_rows(app: Hub) -> list[tuple]:
    with app.pool.connection() as conn:
        return conn.execute("SELECT originator_id, originator_version, topic, state FROM hub_events"
                            " ORDER BY notification_id", binary=True).fetchall()


@pytest.fixture
def app(settings):
    app = Hub(settings, settings.database_url)
    yield app
    app.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_the_decoder_gives_the_mappers_events_for_every_event_type(app, seed):
    record(app, seed)
    record_awkward(app)
    decoder = EventDecoder(app.mapper)
    assert decoder.fast, "the hub's mapper (no cipher, no compressor, JSON) should take the fast path"
    rows = stored_rows(app)
    topics, fast_topics, fast = set(), set(), 0
    for originator_id, version, topic, state in rows:
        state = bytes(state)
        expected = app.mapper.to_domain_event(StoredEvent(originator_id, version, topic, state))
        got = decoder((originator_id, version, topic, state))
        assert type(got) is type(expected), topic
        assert got.__dict__ == expected.__dict__, topic
        assert list(got.__dict__) == list(expected.__dict__), topic
        for value in got.__dict__.values():  # no typed value left as its JSON form
            assert not (isinstance(value, dict) and "_type_" in value), topic
        took_fast = decoder._fast(decoder._class(topic), originator_id, version, state) is not None
        if any(mark in state for mark in MAPPER_ONLY):
            assert not took_fast, f"{topic} must go to the mapper: {state[:300]!r}"
        topics.add(topic)
        if took_fast:
            fast_topics.add(topic)
            fast += 1
    wanted = {t for p in all_projections() for t in p.topics}
    assert wanted <= topics, f"the log lacks {wanted - topics}"
    objects = next(p for p in all_projections() if p.name == "objects")
    assert set(objects.topics) <= fast_topics, f"the mapper decoded every {set(objects.topics) - fast_topics}"
    assert fast < len(rows)


@pytest.mark.parametrize("name", [p.name for p in all_projections()])
def test_views_built_with_the_decoder_equal_views_built_with_the_mapper(app, name):
    record(app, SEEDS[0])
    record_awkward(app)
    projection = next(p for p in all_projections() if p.name == name)
    log = EventLog(app)
    fast = views(log, projection, 5000)
    log._decoder.fast = False  # every row through the mapper
    assert views(log, projection, 5000) == fast
    assert any(fast.values())


def test_a_compressed_log_is_decoded_by_the_mapper(app):
    """With a compressor (or a cipher) the stored state is not JSON: the decoder leaves it to the mapper."""
    mapper = Mapper(transcoder=app.mapper.transcoder, compressor=ZlibCompressor())
    location = o.Location("IN", "ECP", "Z1", ex.location(id="Z1"), message("PUT", "Z1"))
    location.patch_evse(location.body["evses"][0]["uid"], {"status": "CHARGING", "last_updated": "2026-03-03T00:00:00Z"},
                        message("PATCH", "Z1"))
    decoder = EventDecoder(mapper)
    assert not decoder.fast
    for event in location.collect_events():
        stored = mapper.to_stored_event(event)
        got = decoder((stored.originator_id, stored.originator_version, stored.topic, stored.state))
        assert type(got) is type(event) and got.__dict__ == mapper.to_domain_event(stored).__dict__

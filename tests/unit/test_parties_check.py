"""The pure parts of ``hub parties check``: what each role publishes (the guides' checklist) and
the test objects of ``--write`` (valid 2.2.1, ids that say they are tests)."""

from __future__ import annotations

import pytest

from hub.ocpi import models
from hub.services.conformance import samples
from hub.services.conformance.expectations import EXPECTED, REQUIRED, expectations, sensible


def _by_need(role: str) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str | None]]] = {REQUIRED: set(), EXPECTED: set()}
    for want in expectations(role):
        found[want.need].add((want.module, want.interface))
    return found


def test_a_cpo_must_offer_its_senders_and_should_offer_the_receivers_the_hub_calls():
    cpo = _by_need("CPO")
    assert cpo[REQUIRED] == {("credentials", None), ("locations", "SENDER"), ("tariffs", "SENDER"),
                             ("sessions", "SENDER"), ("cdrs", "SENDER")}
    assert cpo[EXPECTED] == {("hubclientinfo", "RECEIVER"), ("tokens", "RECEIVER"), ("commands", "RECEIVER"),
                             ("chargingprofiles", "RECEIVER")}


def test_an_emsp_must_offer_tokens_sender_and_should_receive_what_the_hub_forwards():
    emsp = _by_need("emsp")
    assert emsp[REQUIRED] == {("credentials", None), ("tokens", "SENDER")}
    assert emsp[EXPECTED] == {("hubclientinfo", "RECEIVER"), ("locations", "RECEIVER"), ("tariffs", "RECEIVER"),
                              ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("chargingprofiles", "SENDER")}
    # An NSP gets site data only; a CPO offering tokens SENDER fits no role of a CPO-only platform.
    assert _by_need("NSP")[EXPECTED] == {("hubclientinfo", "RECEIVER"), ("locations", "RECEIVER"),
                                         ("tariffs", "RECEIVER")}
    assert ("tokens", "SENDER") not in sensible(["CPO"]) and ("tokens", "SENDER") in sensible(["CPO", "EMSP"])
    assert ("commands", "SENDER") in sensible(["EMSP"])  # OCPI lets the requester publish it


@pytest.mark.parametrize(("build", "model"), [(samples.location, models.Location), (samples.tariff, models.Tariff),
                                              (samples.token, models.Token), (samples.session, models.Session),
                                              (samples.cdr, models.CDR)])
def test_the_test_objects_are_valid_and_say_they_are_tests(build, model):
    object_id = samples.test_id("XYZ", "1A2B3C4D")
    assert object_id == "CIH-CHECK-XYZ-1A2B3C4D"
    body = build(object_id, "2026-12-07T10:00:00.000Z")
    model.model_validate(body)
    assert (body["country_code"], body["party_id"]) == ("IN", "CIH")
    removed = samples.location(object_id, "2026-12-07T10:00:00.000Z", removed=True)
    models.Location.model_validate(removed)
    assert removed["publish"] is False and removed["evses"][0]["status"] == "REMOVED"

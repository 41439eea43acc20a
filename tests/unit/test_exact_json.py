"""Numbers kept exactly (hub/ocpi/numbers.py) and partner URLs as published (hub/ocpi/urls.py)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from hub.ocpi.limits import JsonTooDeep, loads_bounded
from hub.ocpi.numbers import dumps, loads
from hub.ocpi.urls import endpoint_url


@pytest.mark.parametrize("text", [
    b'{"price":2.50}', b'{"price":0.12345678901234567890123}', b'{"n":123456789012345678901234567890}',
    b'{"n":-18446744073709551617}', b'{"kwh":1234567.123456789012}', b'{"a":[1,2.5,20.50,"1.0"]}',
    b'{"plain":1,"f":20.5,"s":"text"}',
])
def test_numbers_come_back_as_sent(text):
    assert dumps(loads(text)) == text
    assert dumps(loads_bounded(text)) == text


def test_inexact_numbers_become_decimals_others_stay_fast():
    assert loads(b'{"p":2.50,"q":2.5,"n":7}') == {"p": Decimal("2.50"), "q": 2.5, "n": 7}
    assert type(loads(b'{"q":2.5}')["q"]) is float


def test_bad_json_and_deep_json_are_refused_on_both_paths():
    for bad in (b'{"p":2.50', b'{"p":NaN, "q": 2.50}'):
        with pytest.raises(orjson.JSONDecodeError):
            loads(bad)
    with pytest.raises(JsonTooDeep):
        loads_bounded(b"[" * 3000 + b"2.50" + b"]" * 3000)


@pytest.mark.parametrize(("published", "path", "called"), [
    ("https://e.example/ocpi/cdrs/", "", "https://e.example/ocpi/cdrs/"),
    ("https://e.example/ocpi/cdrs", "", "https://e.example/ocpi/cdrs"),
    ("https://e.example/ocpi/locations/", "/IN/ECP/LOC1", "https://e.example/ocpi/locations/IN/ECP/LOC1"),
    ("https://e.example/ocpi/locations", "/IN/ECP/LOC1", "https://e.example/ocpi/locations/IN/ECP/LOC1"),
    ("https://e.example/tokens/", "/04A1/authorize", "https://e.example/tokens/04A1/authorize"),
    ("https://e.example/tokens?x=1", "", "https://e.example/tokens?x=1"),
])
def test_partner_urls_are_called_as_published(published, path, called):
    assert endpoint_url(published, path) == called

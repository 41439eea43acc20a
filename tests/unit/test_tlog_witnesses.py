"""Subscriptions of witnesses to checkpoint pushes: the URL's form, and the aggregate's events."""

from uuid import uuid4

from hub.domain.witnesses import MAX_URL_LENGTH, CheckpointSubscription, url_problem


def test_only_absolute_http_urls_receive_checkpoints():
    assert url_problem("https://witness.example/checkpoints") is None
    assert url_problem("http://127.0.0.1:8080/c") is None
    for bad in (None, "", "  ", 42, "ftp://x.example/c", "/relative", "https://x.example/a b",
                "https://x.example/" + "a" * MAX_URL_LENGTH):
        assert url_problem(bad).startswith("url: "), bad


def test_a_subscription_is_one_per_platform_and_records_who_changed_it():
    platform = uuid4()
    subscription = CheckpointSubscription(platform)
    assert subscription.id == CheckpointSubscription.create_id(str(platform))
    subscription.subscribe(url="https://w.example/c", party="IN/WIT/EMSP", by="partner")
    assert (subscription.url, subscription.party) == ("https://w.example/c", "IN/WIT/EMSP")
    subscription.unsubscribe(by="ops")
    assert subscription.url is None
    events = subscription.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "Subscribed", "Unsubscribed"]
    assert events[1].by == "partner" and events[2].by == "ops"

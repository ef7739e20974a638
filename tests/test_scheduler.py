"""The scheduling policy on its own: deterministic, time is an argument (no clock, no model)."""

from __future__ import annotations

import random

import pytest

from app.scheduler import MAX_PADDING_RATIO, Policy, Request, padded_tokens

SLACK = 0.001  # seconds per token


def policy(max_texts: int = 32, max_tokens: int = 4096) -> Policy:
    return Policy(max_texts=max_texts, max_tokens=max_tokens, slack_s_per_token=SLACK)


def queue(p: Policy, lengths: list[int], at: float = 0.0) -> Request:
    request = Request(list(lengths), at)
    p.add(request)
    return request


def drain(p: Policy) -> list[list]:
    calls = []
    while call := p.take():
        calls.append(call)
    return calls


def test_mixed_lengths_are_grouped_by_length_not_arrival():
    p = policy()
    rng = random.Random(1)
    for i in range(60):  # 90/10 by requests, interleaved: every 10th is a passage
        queue(p, [rng.randint(128, 256) if i % 10 == 0 else rng.randint(8, 32)], at=i * 1e-4)
    calls = drain(p)
    kinds = [{it.length >= 128 for it in call} for call in calls]
    assert all(len(k) == 1 for k in kinds), "a call mixed queries and passages"
    short_calls = [c for c in calls if c[0].length < 128]
    assert [len(c) for c in short_calls] == [32, 22]  # the 54 queries fill calls of max_texts
    assert calls[0][0].length < 128  # queries first: their deadlines are earlier
    assert p.queued_texts == 0 and p.queued_tokens == 0


@pytest.mark.parametrize(("max_texts", "max_tokens"), [(32, 4096), (8, 4096), (64, 1024), (256, 2048)])
def test_every_call_respects_the_budget_and_the_padding_bound(max_texts, max_tokens):
    p = policy(max_texts, max_tokens)
    rng = random.Random(max_texts * max_tokens)
    for i in range(200):
        queue(p, [rng.choice([rng.randint(3, 40), rng.randint(100, 256)]) for _ in range(rng.randint(1, 9))], i * 1e-3)
    total = p.queued_texts
    calls = drain(p)
    assert sum(len(c) for c in calls) == total
    for call in calls:
        assert len(call) <= max_texts
        assert padded_tokens(call) <= max_tokens
        if len(call) > 1:
            assert padded_tokens(call) <= MAX_PADDING_RATIO * sum(it.length for it in call)


def test_a_long_text_alone_over_the_ratio_still_runs():
    p = policy(max_tokens=256)
    queue(p, [256, 256, 3])
    calls = drain(p)
    assert sorted(len(c) for c in calls) == [1, 1, 1]


def test_request_spread_over_calls_keeps_indexes():
    p = policy(max_texts=4)
    lengths = [50, 10, 40, 12, 60, 11, 45, 13, 9]
    request = queue(p, lengths)
    calls = drain(p)
    assert len(calls) >= 3
    seen = sorted((it.index, it.length) for call in calls for it in call)
    assert seen == list(enumerate(lengths))  # every text once, its index tells where it goes back
    assert request.pending == 0


def test_short_request_goes_before_an_earlier_long_one():
    p = policy()
    long = queue(p, [256] * 16, at=0.0)
    short = queue(p, [12], at=0.010)  # arrives 10 ms later, deadline 0.022 < 0.256
    first = p.take()
    assert [it.request for it in first] == [short]
    assert all(it.request is long for it in p.take())


def test_among_similar_lengths_the_older_goes_first():
    p = policy(max_texts=1)
    a = queue(p, [20], at=0.0)
    b = queue(p, [20], at=0.001)
    assert p.take()[0].request is a and p.take()[0].request is b


def test_a_long_request_is_not_starved_by_a_stream_of_short_ones():
    """Simulated time: every call takes 10 ms and 20 new queries arrive during it, forever. The
    passage's deadline (arrival + 256 x slack) passes; after that only work that arrived before
    the deadline can go first, so it runs within slack + what was queued at that moment."""
    p = policy()
    long = queue(p, [256], at=0.0)
    now, ran_at = 0.0, None
    for step in range(1000):
        for k in range(20):
            queue(p, [random.Random(step * 20 + k).randint(8, 32)], at=now)
        call = p.take()
        if any(it.request is long for it in call):
            ran_at = now
            break
        now += 0.010
    assert ran_at is not None, "the passage starved"
    assert ran_at <= 256 * SLACK + 0.010 * 5  # its slack, then the backlog admitted before it


def test_discard_drops_a_cancelled_request_and_its_tokens():
    p = policy()
    keep = queue(p, [10, 20])
    gone = queue(p, [30, 40, 50])
    assert p.discard([gone]) == 3
    assert p.queued_texts == 2 and p.queued_tokens == 30 and p.requests() == [keep]
    assert all(it.request is keep for call in drain(p) for it in call)
    assert p.discard([gone]) == 0


def test_empty_queue_gives_empty_call():
    p = policy()
    assert p.take() == [] and p.queued_texts == 0


def test_invalid_budget_is_refused():
    with pytest.raises(ValueError, match="max_tokens"):
        Policy(max_texts=4, max_tokens=0, slack_s_per_token=SLACK)


def test_a_large_request_does_not_block_later_queries():
    """A request of 64 passages arrived at t=0; a query at t=2 s (when the request's first
    deadlines have passed) goes within a call or two, not after the whole request."""
    p = policy(max_texts=32, max_tokens=2048)
    big = queue(p, [256] * 64, at=0.0)
    first = p.take()  # runs while time passes
    assert all(it.request is big for it in first)
    query = queue(p, [14], at=2.0)
    order = [{it.request for it in call} for call in drain(p)]
    assert order.index({query}) <= 1, order


def test_a_request_texts_get_deadlines_shortest_first():
    p = policy(max_texts=1)
    queue(p, [30, 10, 20], at=0.0)
    assert [p.take()[0].length for _ in range(3)] == [10, 20, 30]

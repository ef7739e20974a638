"""The scheduling policy on its own: deterministic, time is an argument (no clock, no model)."""

from __future__ import annotations

import itertools
import random

import pytest

from app.scheduler import Policy, Request, padded_tokens

SLACK = 0.001  # seconds per token
OVERHEAD = 27.0  # a call's fixed cost in tokens (measured on the dev machine: 4.4 ms at 6k tokens/s)


def policy(max_texts: int = 32, max_tokens: int = 4096, overhead: float = OVERHEAD) -> Policy:
    return Policy(max_texts=max_texts, max_tokens=max_tokens, slack_s_per_token=SLACK, overhead_tokens=overhead)


def cost(calls: list[list], overhead: float = OVERHEAD) -> float:
    return sum(overhead + padded_tokens(call) for call in calls)


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
    assert calls[0][0].length < 128  # queries first: their deadlines are earlier
    short_calls = [c for c in calls if c[0].length < 128]
    assert 1 < len(short_calls) < 54  # grouped, and by length: padding is not free
    assert sum(padded_tokens(c) for c in short_calls) < 1.2 * sum(it.length for c in short_calls for it in c)
    assert p.queued_texts == 0 and p.queued_tokens == 0


@pytest.mark.parametrize("seed", range(12))
def test_draining_a_queue_costs_what_its_cheapest_split_costs(seed):
    """Brute force over every way to split a small queue into calls: the policy's calls, one
    take() at a time from an ever-changing seed, add up to the cheapest split."""
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 40), rng.randint(100, 256)]) for _ in range(7)]
    p = policy(max_texts=3, max_tokens=512)
    for i, n in enumerate(lengths):
        queue(p, [n], at=rng.random() * 0.1 + i * 1e-6)
    got = cost(drain(p))

    def splits(items: list[int]):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for k in range(len(rest) + 1):
            for others in itertools.combinations(rest, k):
                group = [first, *others]
                if len(group) <= 3 and len(group) * max(group) <= 512:
                    left = list(rest)
                    for o in others:
                        left.remove(o)
                    for tail in splits(left):
                        yield [group, *tail]

    best = min(sum(OVERHEAD + len(g) * max(g) for g in split) for split in splits(lengths))
    assert got == pytest.approx(best)


def test_call_overhead_decides_how_far_lengths_are_grouped():
    lengths = [8, 12, 16, 20, 24, 28, 32]
    sizes = {}
    for overhead in (0.0, 27.0, 1000.0):
        p = policy(overhead=overhead)
        queue(p, lengths)
        sizes[overhead] = sorted(len(c) for c in drain(p))
    assert sizes[0.0] == [1] * 7  # free calls: never pad
    assert 1 < len(sizes[27.0]) < 7  # some padding is cheaper than another call
    assert sizes[1000.0] == [7]  # calls so dear that one padded call wins


@pytest.mark.parametrize(("max_texts", "max_tokens"), [(32, 4096), (8, 4096), (64, 1024), (256, 2048)])
def test_every_call_respects_the_budget(max_texts, max_tokens):
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


def test_a_long_text_alone_over_the_budget_share_still_runs():
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
    """Simulated time: every call takes 10 ms and 20 new queries arrive during it, forever (more
    than the calls take: an overload that admission would cap). The passage's deadline (arrival +
    256 x slack) passes; from then on every call before it is seeded by work with an earlier
    deadline, i.e. work that arrived before that moment: a finite backlog."""
    p = policy()
    long = queue(p, [256], at=0.0)
    deadline = 256 * SLACK
    now, ran_at, before = 0.0, None, []
    for step in range(1000):
        for k in range(20):
            queue(p, [random.Random(step * 20 + k).randint(8, 32)], at=now)
        call = p.take()
        if any(it.request is long for it in call):
            ran_at = now
            break
        before.append(call)
        now += 0.010
    assert ran_at is not None, "the passage starved"
    assert all(min(it.deadline for it in call) <= deadline for call in before)
    backlog = 20 * (int(deadline / 0.010) + 1)  # queries that arrived before its deadline
    assert ran_at <= deadline + 0.010 * backlog


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
    with pytest.raises(ValueError, match="overhead_tokens"):
        Policy(max_texts=4, max_tokens=64, slack_s_per_token=SLACK, overhead_tokens=-1)


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

"""Random identifiers: the alphabet, the length, and every character equally likely."""

from __future__ import annotations

from collections import Counter

from ccgate.ids import BASE62, random_base62, request_id


def test_request_ids_have_anthropics_shape_and_do_not_repeat() -> None:
    ids = {request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(ident) == 28 and ident.startswith("req_011C") and set(ident[8:]) <= set(BASE62) for ident in ids)


def test_each_base62_character_is_equally_likely() -> None:
    """400,000 characters: each of the 62 expected 6,452 times; a skew as small as the one a byte taken
    modulo 62 would give (the characters 0-7 five times in 256 instead of four) is over 15 sigma."""
    counts = Counter("".join(random_base62(40) for _ in range(10_000)))
    expected = 400_000 / 62
    assert set(counts) == set(BASE62)
    assert all(abs(count - expected) < 5 * expected ** 0.5 for count in counts.values()), counts

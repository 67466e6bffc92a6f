"""The counter-based random streams: public and secret apart, secret roots never shown."""

import pytest

from paczero.privacy.randomness import (
    SEED_BITS,
    RandomStream,
    public_stream,
    secret_stream,
    tensor_seed,
)


def test_streams_are_counter_based_and_separate():
    public = public_stream(0)
    a = public.generator("direction", 3, 0).integers(1 << 62)
    b = public.generator("direction", 3, 0).integers(1 << 62)
    c = public.generator("direction", 3, 1).integers(1 << 62)
    assert a == b and a != c
    assert public.seed("direction", 3, 0) == public.seed("direction", 3, 0)
    assert public.seed("direction", 3, 0) != public.seed("direction", 4, 0)
    # a secret stream with the same number as the public seed is still a different stream
    assert RandomStream(0, "secret").seed("x") != public.seed("x")
    s1, src1 = secret_stream(None)
    s2, _ = secret_stream(None)
    assert src1 == "os-entropy" and s1.root != s2.root
    assert s1.root.bit_length() > 64  # 128-bit entropy, not guessable from a small seed
    with pytest.warns(UserWarning, match="seed.secret"):
        _, src = secret_stream(7)
    assert src == "seeded"
    assert "secret" in repr(s1) and str(s1.root) not in repr(s1)
    assert tensor_seed(1, 0) != tensor_seed(1, 1) != tensor_seed(2, 0)


def test_generators_of_one_key_repeat_and_counters_of_any_kind_key_them():
    stream = RandomStream(11, "public")
    draws = stream.generator("rows", 0).permutation(50)
    assert list(draws) == list(stream.generator("rows", 0).permutation(50))
    assert sorted(draws) == list(range(50))
    assert stream.seed("rows", "a") != stream.seed("rows", "b")
    assert 0 <= stream.seed("rows", 0) < 1 << SEED_BITS

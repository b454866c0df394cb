"""Replay's state in compact form: recent sessions as objects, the rest as encoded bytes.

Why: a `Baseline` object with its lists and strings takes ~1.5-2 KB of memory; its
stored encoding (`worker.codec`, format 2) takes ~270 bytes. A replay of a long export
holds every session it has seen, so `CompactStore` keeps only the most recently used
baselines and profiles as objects (`hot` of each) and the others as the bytes the
worker would store for them. A session that comes back is decoded and becomes hot
again.

Decisions cannot change: the codec is lossless (tests/unit/test_codec.py checks the
round trip of every demo baseline and of odd values), and an object handed out by
`get` stays in the hot set, so the engine's in-place updates of it are kept exactly
as with a plain dict (also for decisions the pipeline then declines to store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from detectors.model import Baseline, UserProfile
from worker.codec import (
    baseline_from_bytes,
    baseline_to_bytes,
    profile_from_bytes,
    profile_to_bytes,
)

HOT_BASELINES = 8192
"""Baselines kept as objects (the most recently used): ~20 MB."""
HOT_PROFILES = 4096

T = TypeVar("T")


class HotCold(Generic[T]):
    """The `limit` most recently used objects as objects, the others as their encoding."""

    __slots__ = ("_cold", "_decode", "_encode", "_hot", "_limit")

    def __init__(self, limit: int, encode: Callable[[T], bytes],
                 decode: Callable[[bytes], T]) -> None:
        self._hot: dict[str, T] = {}
        self._cold: dict[str, bytes] = {}
        self._limit = max(limit, 1)
        self._encode, self._decode = encode, decode

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def get(self, key: str, /) -> T | None:
        value = self._hot.get(key)
        if value is not None:
            return value
        data = self._cold.pop(key, None)
        if data is None:
            return None
        value = self._decode(data)
        self._put(key, value)
        return value

    def set(self, key: str, value: T, /) -> None:
        self._hot.pop(key, None)  # most recently used goes last
        self._put(key, value)

    def _put(self, key: str, value: T) -> None:
        hot = self._hot
        hot[key] = value
        if len(hot) > self._limit:
            old = next(iter(hot))
            self._cold[old] = self._encode(hot.pop(old))

    def values(self) -> Iterator[T]:
        """Every object (cold ones decoded, not made hot)."""
        yield from self._hot.values()
        for data in self._cold.values():
            yield self._decode(data)


class CompactStore:
    """A `BaselineStore` (worker.pipeline) for replay with bounded object memory."""

    __slots__ = ("_baselines", "_profiles")

    def __init__(self, hot_baselines: int = HOT_BASELINES,
                 hot_profiles: int = HOT_PROFILES) -> None:
        self._baselines = HotCold(hot_baselines, baseline_to_bytes, baseline_from_bytes)
        self._profiles = HotCold(hot_profiles, profile_to_bytes, profile_from_bytes)

    def __len__(self) -> int:
        return len(self._baselines)

    def get(self, key: str, /) -> Baseline | None:
        return self._baselines.get(key)

    def __setitem__(self, key: str, value: Baseline, /) -> None:
        self._baselines.set(key, value)

    def get_profile(self, key: str, /) -> UserProfile | None:
        return self._profiles.get(key)

    def set_profile(self, key: str, value: UserProfile, /) -> None:
        self._profiles.set(key, value)

    def values(self) -> Iterator[Baseline]:
        """Every baseline (cold ones decoded, not made hot)."""
        return self._baselines.values()

    def profiles(self) -> Iterator[UserProfile]:
        return self._profiles.values()

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

from collections.abc import Iterator

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


class CompactStore:
    """A `BaselineStore` (worker.pipeline) for replay with bounded object memory."""

    __slots__ = ("_cold", "_cold_profiles", "_hot", "_hot_profiles", "_max", "_max_profiles")

    def __init__(self, hot_baselines: int = HOT_BASELINES,
                 hot_profiles: int = HOT_PROFILES) -> None:
        self._hot: dict[str, Baseline] = {}
        self._cold: dict[str, bytes] = {}
        self._hot_profiles: dict[str, UserProfile] = {}
        self._cold_profiles: dict[str, bytes] = {}
        self._max = max(hot_baselines, 1)
        self._max_profiles = max(hot_profiles, 1)

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def get(self, key: str, /) -> Baseline | None:
        hot = self._hot
        base = hot.get(key)
        if base is not None:
            return base
        data = self._cold.pop(key, None)
        if data is None:
            return None
        base = baseline_from_bytes(data)
        self._put(key, base)
        return base

    def __setitem__(self, key: str, value: Baseline, /) -> None:
        hot = self._hot
        if key in hot:
            del hot[key]  # most recently used goes last
        self._put(key, value)

    def _put(self, key: str, value: Baseline) -> None:
        hot = self._hot
        hot[key] = value
        if len(hot) > self._max:
            old = next(iter(hot))
            self._cold[old] = baseline_to_bytes(hot.pop(old))

    def get_profile(self, key: str, /) -> UserProfile | None:
        hot = self._hot_profiles
        profile = hot.get(key)
        if profile is not None:
            return profile
        data = self._cold_profiles.pop(key, None)
        if data is None:
            return None
        profile = profile_from_bytes(data)
        self._put_profile(key, profile)
        return profile

    def set_profile(self, key: str, value: UserProfile, /) -> None:
        hot = self._hot_profiles
        if key in hot:
            del hot[key]
        self._put_profile(key, value)

    def _put_profile(self, key: str, value: UserProfile) -> None:
        hot = self._hot_profiles
        hot[key] = value
        if len(hot) > self._max_profiles:
            old = next(iter(hot))
            self._cold_profiles[old] = profile_to_bytes(hot.pop(old))

    def values(self) -> Iterator[Baseline]:
        """Every baseline (cold ones decoded, not made hot)."""
        yield from self._hot.values()
        for data in self._cold.values():
            yield baseline_from_bytes(data)

    def profiles(self) -> Iterator[UserProfile]:
        yield from self._hot_profiles.values()
        for data in self._cold_profiles.values():
            yield profile_from_bytes(data)

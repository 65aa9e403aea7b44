"""Seeded random generators, one per purpose.

Every random choice the method makes draws from a generator seeded by the run seed
and a description of the choice (its purpose, the round, the prompt, the image...).
Nothing depends on global state or on the order in which answers arrive, so the same
settings always plan the same requests, which is what makes reruns free and resumes
exact.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["generator", "stable_hash"]


def stable_hash(*parts: object) -> str:
    """Return a SHA-256 hex digest of the parts' ``str`` forms, stable across runs.

    >>> stable_hash("a", 1) == stable_hash("a", 1)
    True
    >>> stable_hash("a", 1) == stable_hash("a1")
    False
    """
    digest = hashlib.sha256()
    for part in parts:
        text = str(part).encode()
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        digest.update(len(text).to_bytes(8, "big"))
        digest.update(text)
    return digest.hexdigest()


def generator(seed: int, purpose: str, *keys: object) -> np.random.Generator:
    """Return a generator for one purpose, independent of every other purpose.

    Args:
        seed: The run seed.
        purpose: What the draws are for (``"negatives"``, ``"minibatch"``, ...).
        keys: Whatever else identifies the choice: round, prompt, image path.
    """
    digest = stable_hash(seed, purpose, *keys)
    return np.random.default_rng(int(digest[:32], 16))

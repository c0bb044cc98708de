"""Train / validation / test splits that keep the test part out of fitting.

``train_val_test_split`` shuffles with a fixed seed, can stratify by label,
and keeps every group of identical items (``groups``, e.g. the normalised
text of a review) inside one part, so a duplicate in the training data never
gives away a test answer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_val_test_split", "check_disjoint"]


def _count(size, n, name):
    if size is None:
        return 0
    if isinstance(size, float) and 0 <= size < 1:
        return int(round(size * n))
    if isinstance(size, (int, np.integer)) and size >= 0:
        return int(size)
    raise ValueError(f"Argument `{name}` must be a fraction in [0, 1) or a count >= 0. Received: {name}={size!r}")


def train_val_test_split(n, test_size, val_size=0, seed=0, stratify=None, groups=None):
    """Return index arrays ``(train, val, test)`` over ``range(n)``.

    Args:
        n: number of items.
        test_size, val_size: fractions of ``n`` (floats below 1) or counts.
        seed: seed of the shuffle.
        stratify: optional labels; each part then keeps the label proportions.
        groups: optional keys; items with equal keys land in the same part.

    The parts are disjoint and cover ``range(n)``; each is sorted.
    """
    n_test, n_val = _count(test_size, n, "test_size"), _count(val_size, n, "val_size")
    if n_test + n_val >= n:
        raise ValueError(f"test_size={n_test} and val_size={n_val} leave nothing to train on out of {n} items")
    rng = np.random.default_rng(seed)
    if groups is not None:
        groups = list(groups)
        if len(groups) != n:
            raise ValueError(f"`groups` has {len(groups)} items but n={n}")
        # One unit per distinct key; a unit carries all its members.
        first = {}
        members = []
        for i, g in enumerate(groups):
            k = first.setdefault(g, len(members))
            if k == len(members):
                members.append([])
            members[k].append(i)
    else:
        members = [[i] for i in range(n)]
    unit_labels = None
    if stratify is not None:
        stratify = np.asarray(stratify)
        if len(stratify) != n:
            raise ValueError(f"`stratify` has {len(stratify)} items but n={n}")
        unit_labels = np.array([stratify[m[0]] for m in members])

    order = rng.permutation(len(members))
    if unit_labels is not None:
        # Interleave the classes so every prefix of `order` keeps the label mix.
        ranks = np.empty(len(order))
        for label in np.unique(unit_labels):
            pos = order[unit_labels[order] == label]
            ranks[pos] = (np.arange(len(pos)) + rng.random()) / len(pos)
        order = order[np.argsort(ranks[order], kind="stable")]

    test, val, train = [], [], []
    for u in order:
        m = members[u]
        if len(test) < n_test:
            test.extend(m)
        elif len(val) < n_val:
            val.extend(m)
        else:
            train.extend(m)
    return (np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64)),
            np.sort(np.asarray(test, dtype=np.int64)))


def check_disjoint(**parts):
    """Raise ValueError if any two named index arrays share an item."""
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = np.intersect1d(parts[a], parts[b])
            if len(common):
                raise ValueError(f"{a} and {b} share {len(common)} items (first: {common[0]})")

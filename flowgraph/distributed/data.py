"""Sharding input data by rank.

>>> import numpy as np
>>> shard(np.arange(8), rank=1, size=2)
array([4, 5, 6, 7])
>>> list(shard(iter(range(5)), rank=0, size=2))
[0, 2, 4]
"""
from __future__ import annotations

import itertools

import numpy as np

from .comm import world


def _rank_size(rank, size):
    w = None
    if rank is None or size is None:
        w = world()
    rank = w.rank if rank is None else int(rank)
    size = w.size if size is None else int(size)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"shard: expected 0 <= rank < size, found rank={rank}, size={size}")
    return rank, size


def _is_batch(data):
    return isinstance(data, (np.ndarray, np.generic, list, tuple, dict))


def shard(data, rank=None, size=None, allow_uneven=False):
    """This rank's part of ``data`` (``rank``/``size`` default to the job's).

    - A batch — an array, or a tuple/list/dict of arrays with the same first
      dimension (inputs and labels, say) — is split along its first axis into ``size``
      contiguous blocks and block ``rank`` is returned, in the same structure. The first
      dimension must divide evenly (each rank then averages over as many examples, so
      averaged gradients equal the full batch's); ``allow_uneven=True`` gives the first
      ranks one more example instead.
    - Any other iterable (a generator or dataset of batches) yields every ``size``-th
      item starting at ``rank``.
    """
    rank, size = _rank_size(rank, size)
    if not _is_batch(data):
        return itertools.islice(data, rank, None, size)
    if isinstance(data, list) and data and np.ndim(data[0]) == 0:
        data = np.asarray(data)  # a list of numbers is one array, not a tuple of arrays
    leaves = list(data.values()) if isinstance(data, dict) else (
        list(data) if isinstance(data, (list, tuple)) else [data])
    lengths = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if len(lengths) != 1 or None in lengths:
        found = ", ".join(str(np.shape(x)) for x in leaves)
        raise ValueError(f"shard: expected arrays with one common first dimension, found "
                         f"shapes {found}")
    n = lengths.pop()
    if n % size and not allow_uneven:
        raise ValueError(f"shard: expected a batch whose first dimension divides evenly by "
                         f"the {size} ranks, found {n} examples (pass allow_uneven=True "
                         "to accept unequal shards)")
    start = rank * (n // size) + min(rank, n % size)
    stop = start + n // size + (1 if rank < n % size else 0)

    def cut(x):
        return x[start:stop] if isinstance(x, np.ndarray) else np.asarray(x)[start:stop]

    if isinstance(data, dict):
        return {k: cut(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        parts = [cut(x) for x in data]
        return type(data)(parts) if not hasattr(data, "_fields") else type(data)(*parts)
    return cut(data)

"""Text corpora for the examples: the Python standard library's own source code.

Every Python installation ships it, so the char-RNN examples need no download (the
same idea as training on the Linux kernel source). The subset is deterministic: the
top-level ``.py`` files of the standard library, in sorted name order, concatenated
until ``max_chars``; characters outside printable ASCII become ``?`` so the vocabulary
stays small (about 100 symbols).

>>> text = stdlib_text(20_000)
>>> len(text), text.isascii()
(20000, True)
"""
from __future__ import annotations

import math
import os
import sysconfig
from collections import Counter

import numpy as np

_KEEP = set(map(chr, range(32, 127))) | {"\n"}


def _clean(text: str) -> str:
    text = text.replace("\t", "    ")
    return "".join(c if c in _KEEP else "?" for c in text)


def stdlib_text(max_chars: int = 400_000) -> str:
    """About ``max_chars`` characters of the standard library's top-level ``.py`` files."""
    root = sysconfig.get_paths()["stdlib"]
    if not os.path.isdir(root):  # unusual layouts: find it through a stdlib module
        import inspect
        root = os.path.dirname(inspect.getfile(os))
    parts, total = [], 0
    for name in sorted(os.listdir(root)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                text = _clean(f.read())
        except OSError:
            continue
        parts.append(f"# ---- {name} ----\n{text}")
        total += len(parts[-1])
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def load_text(path=None, max_chars=400_000) -> str:
    """The text of ``path`` (UTF-8), or the standard-library corpus when ``path`` is None."""
    if path is None:
        return stdlib_text(max_chars)
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


class Vocabulary:
    """Characters <-> integer ids (sorted characters, so the mapping is reproducible)."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = self.index.get("?", 0)
        return np.array([self.index.get(c, unknown) for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def unigram_entropy(ids: np.ndarray) -> float:
    """The entropy (nats per character) of the character frequencies: the loss of the
    best model that ignores context, the baseline a sequence model must beat.
    """
    counts = np.array(list(Counter(ids.tolist()).values()), np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


class StreamBatcher:
    """Consecutive ``[batch, seq_len]`` windows for truncated backpropagation through
    time: the data is cut into ``batch`` parallel streams, and batch ``k`` continues
    where batch ``k-1`` stopped in every stream, so the final RNN state of one batch is
    the right initial state of the next. Returns ``(inputs, targets)``; targets are the
    inputs shifted by one character.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int):
        stream_len = (len(ids) - 1) // batch
        if stream_len < seq_len:
            raise ValueError(f"text too short: {len(ids)} characters cannot make {batch} "
                             f"streams of at least {seq_len + 1}")
        self.inputs = ids[:batch * stream_len].reshape(batch, stream_len)
        self.targets = ids[1:batch * stream_len + 1].reshape(batch, stream_len)
        self.seq_len = seq_len
        self.windows = stream_len // seq_len

    def __call__(self, step: int):
        """The window of ``step`` (wrapping around; a wrap means a fresh start)."""
        k = step % self.windows
        sl = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.inputs[:, sl], self.targets[:, sl], k == 0


def perplexity(nats: float) -> float:
    return math.exp(nats)

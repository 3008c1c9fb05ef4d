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
import re
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


# --- words: the word-level language model (ptb_word_lm.py) ------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|[0-9]+|[^\sA-Za-z_0-9]")


def stdlib_words(max_words: int = 125_000) -> list[str]:
    """About ``max_words`` words of the standard library's source, in PTB's form: each
    line's identifiers, numbers and punctuation marks, then ``<eos>``.

    >>> words = stdlib_words(1000)
    >>> len(words), words.count("<eos>") > 10
    (1000, True)
    """
    words: list[str] = []
    chars = 4 * max_words + 1000
    while True:
        for line in stdlib_text(chars).splitlines():
            words.extend(_WORD.findall(line))
            words.append("<eos>")
            if len(words) >= max_words:
                return words[:max_words]
        if chars > 200_000_000:       # the whole standard library is shorter
            return words
        chars, words = 2 * chars, []


class WordVocabulary:
    """Words <-> ids: the ``size - 1`` most frequent words of ``words`` (ties broken by
    the word itself, so the mapping is reproducible) and ``<unk>`` for every other word,
    as PTB's preprocessed text has."""

    def __init__(self, words, size: int = 10_000):
        counts = Counter(words)
        counts.pop("<unk>", None)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[:max(size - 1, 0)]
        self.words = ["<unk>"] + ranked
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, words) -> np.ndarray:
        return np.array([self.index.get(w, 0) for w in words], np.int32)

    def decode(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids]


def ptb_iterator(ids: np.ndarray, batch_size: int, num_steps: int):
    """TF1's ``ptb_producer`` as a generator: ``ids`` cut into ``batch_size`` rows read
    in ``num_steps`` windows; yields ``(x, y)`` with ``y`` the next word of each ``x``.

    >>> [x.tolist() for x, _ in ptb_iterator(np.arange(10), 2, 2)]
    [[[0, 1], [5, 6]], [[2, 3], [7, 8]]]
    """
    batch_len = len(ids) // batch_size
    data = np.asarray(ids[:batch_size * batch_len], np.int32).reshape(batch_size, batch_len)
    epoch_size = (batch_len - 1) // num_steps
    if epoch_size <= 0:
        raise ValueError(f"{len(ids)} words are too few for batch_size {batch_size} and "
                         f"num_steps {num_steps}")
    for i in range(epoch_size):
        window = slice(i * num_steps, (i + 1) * num_steps)
        yield data[:, window], data[:, i * num_steps + 1:(i + 1) * num_steps + 1]

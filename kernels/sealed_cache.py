"""Numba's per-function disk cache, confined to the flowgraph folder and sealed.

:func:`sealed_cache_class` turns Numba's cache class (``FunctionCache`` for the CPU,
numba-cuda's ``CUDACache``) into one that

* keeps its files only in the ``__pycache__`` folder beside the kernel's source in the
  flowgraph cache folder (Numba would otherwise fall back to ``NUMBA_CACHE_DIR`` or a
  user-wide folder of its own when that one is not writable), and refuses that folder
  if it fails :func:`kernels.cache_auth.folder_problem`;
* seals every index (``.nbi``) and data (``.nbc``) file it writes and checks the seal
  of the exact bytes it reads *before* unpickling them (:mod:`kernels.cache_auth`). A
  file that fails is deleted and reads as a miss, so Numba compiles again and writes a
  sealed file. This is the only place Numba reads these files, whichever path asks:
  flowgraph's fast load (:func:`kernels.cache._load_compiled`) or Numba's own
  ``Dispatcher.compile``.

Saving never fails a run: a file that cannot be written (its name taken by a folder,
say) disables the disk cache of that kernel with one warning.

>>> from numba.core.caching import FunctionCache
>>> sealed_cache_class(FunctionCache).__name__
'SealedFunctionCache'
"""
from __future__ import annotations

import functools
import inspect
import io
import os
import pickle

from . import cache_auth as auth


class Trust:
    """How one kernel's files are sealed: the cache folder their names are relative
    to, the key, and the SHA-256 of the kernel's source."""

    def __init__(self, root: str, key: bytes, source_digest: bytes):
        self.root, self.key, self.source_digest = root, key, source_digest


class SealedCache:
    """Marker base of every class :func:`sealed_cache_class` makes."""


@functools.lru_cache(maxsize=None)
def sealed_cache_class(base):
    """The sealed, confined subclass of Numba cache class ``base``; its instances are
    made as ``cls(py_func, trust)`` and raise ``OSError``/``RuntimeError`` when the
    kernel's ``__pycache__`` folder cannot be used."""
    impl_base = base._impl_class
    in_tree = next(c for c in impl_base._locator_classes
                   if c.__name__.lstrip("_") == "InTreeCacheLocator")

    class Locator(in_tree):
        def ensure_cache_path(self):
            problem = auth.folder_problem(self.get_cache_path())
            if problem:
                raise OSError(f"{self.get_cache_path()} {problem}")

    class Impl(impl_base):
        _locator_classes = [Locator]

    class Sealed(SealedCache, base):
        _impl_class = Impl

        def __init__(self, py_func, trust: Trust):
            super().__init__(py_func)
            expected = os.path.join(os.path.dirname(inspect.getfile(py_func)), "__pycache__")
            if os.path.realpath(self._cache_path) != os.path.realpath(expected):
                # NUMBA_CACHE_LOCATOR_CLASSES overrides the locators: never follow it.
                raise RuntimeError(f"Numba chose the cache folder {self._cache_path}, "
                                   f"expected {expected}")
            old = self._cache_file
            self._cache_file = _sealed_file_class(type(old))(
                old._cache_path, self._impl.filename_base, old._source_stamp)
            self._cache_file.trust = trust

        def _save_overload(self, sig, data):
            try:
                super()._save_overload(sig, data)
            except OSError as exc:
                auth.warn_once(f"kernel cache: cannot write an entry in {self._cache_path} "
                               f"({type(exc).__name__}: {exc}); that kernel stays in memory (later "
                               "unusable entries are not reported)", kind="entry")
                self.disable()

    Sealed.__name__ = Sealed.__qualname__ = f"Sealed{base.__name__}"
    return Sealed


@functools.lru_cache(maxsize=None)
def _sealed_file_class(base):
    """Numba's ``IndexDataCacheFile`` reading and writing sealed files (same pickles
    inside, with the seal in front)."""

    class SealedFile(base):
        trust: Trust = None

        def _name(self, path):
            return os.path.relpath(path, self.trust.root)

        def _read_checked(self, path):
            try:
                with open(path, "rb") as f:
                    blob = f.read()
            except FileNotFoundError:
                return None
            except OSError as exc:
                auth.warn_once(f"kernel cache entry {path} cannot be read "
                               f"({type(exc).__name__}); compiling that kernel again (later "
                               "unusable entries are not reported)", kind="entry")
                return None
            payload = auth.unseal(self.trust.key, self._name(path), self.trust.source_digest,
                                  blob)
            if payload is None:
                auth.warn_once(f"kernel cache entry {path} failed its authentication check "
                               "(not written by flowgraph with your key, or corrupt): "
                               "deleted and rebuilt (later ones are not reported)", kind="auth")
                try:
                    os.remove(path)
                except OSError:
                    pass
            return payload

        def _write_sealed(self, path, payload):
            blob = auth.seal(self.trust.key, self._name(path), self.trust.source_digest,
                             payload)
            with self._open_for_write(path) as f:
                f.write(blob)

        def _load_index(self):
            payload = self._read_checked(self._index_path)
            if payload is None:
                return {}
            stream = io.BytesIO(payload)
            if pickle.load(stream) != self._version:
                return {}
            stamp, overloads = pickle.loads(stream.read())
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads):
            self._write_sealed(self._index_path,
                               pickle.dumps(self._version, protocol=-1)
                               + self._dump((self._source_stamp, overloads)))

        def _load_data(self, name):
            payload = self._read_checked(self._data_path(name))
            if payload is None:
                raise FileNotFoundError(name)   # load() reads it as a miss: recompile
            return pickle.loads(payload)

        def _save_data(self, name, data):
            self._write_sealed(self._data_path(name), self._dump(data))

    SealedFile.__name__ = SealedFile.__qualname__ = f"Sealed{base.__name__}"
    return SealedFile

"""The on-disk kernel cache: generated kernel source files that Numba caches beside.

Numba caches a function's machine code keyed by its source file, so every generated
kernel is written to ``$FLOWGRAPH_CACHE_DIR/fg_<hash of its source>.py`` (default
``~/.cache/flowgraph``); Numba keeps its index and machine code in the ``__pycache__``
folder next to it, keyed by the file's contents and the argument types.

What is trusted, and why, is in :mod:`kernels.cache_auth`; in short:

* The module is executed from the source text flowgraph generated, in memory
  (``compile`` + ``exec`` into a fresh module), never imported from the file, so no
  ``.pyc`` is ever read. A source file whose text differs is rewritten (Numba hashes it).
* Numba's files are sealed with a per-user key and checked before they are unpickled
  (:mod:`kernels.sealed_cache`); a file that fails is deleted and the kernel recompiled.
* A folder that is not yours, is writable by group or others, is read-only, or cannot
  be made is not used at all: kernels compile in memory, with one
  :class:`~flowgraph.errors.KernelCacheWarning`. So does a cache entry that cannot be
  used (a folder where a file should be). A run never fails because of the cache.

Several processes may share the folder: files are written to a unique temporary name
and moved into place with ``os.replace`` (atomic), and Numba writes its files the same way.

>>> import tempfile, os
>>> os.environ["FLOWGRAPH_CACHE_DIR"] = tempfile.mkdtemp()
>>> module = load_module("def kernel(x):\\n    return x\\n")
>>> module.kernel(3), os.path.basename(module.__file__).startswith("fg_")
(3, True)
"""
from __future__ import annotations

import glob
import hashlib
import os
import sys
import threading
import types
import uuid

from . import cache_auth as auth

_LOCK = threading.RLock()
_MODULES: dict[tuple, object] = {}   # (folder, stem, source hash) -> module, per process
# (source, name, argument types) -> entry point, per process: the steps of a plan (the T
# time steps of an RNN) share a few kernels, resolved once here rather than going through
# the module lookup, Numba's signature normalization and its compile lock at every step.
_ENTRIES: dict[tuple, object] = {}
_TRUST_ATTR = "__flowgraph_trust__"  # on a module: how its Numba files are sealed, or None


def cache_dir() -> str:
    """The kernel cache folder (``FLOWGRAPH_CACHE_DIR`` or ``~/.cache/flowgraph``)."""
    path = os.environ.get("FLOWGRAPH_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "flowgraph")
    return os.path.abspath(path)


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:24]


def _usable_folder(subdir: str = ""):
    """``(cache root, folder for the files, key)`` when the disk cache may be used,
    else ``None`` after one warning saying why."""
    root = cache_dir()
    folder = os.path.join(root, subdir) if subdir else root
    for path in dict.fromkeys((root, folder)):
        problem = auth.folder_problem(path)
        if problem:
            auth.warn_once(f"kernel cache folder {path} {problem}: not used; kernels "
                           "compile in memory in this process (use a folder of your own, "
                           "mode 0700, in FLOWGRAPH_CACHE_DIR)")
            return None
    key, problem = auth.load_key()
    if problem:
        auth.warn_once(f"kernel cache not used: {problem}; kernels compile in memory")
        return None
    return root, folder, key


def _source_file(source: str, folder: str, stem: str) -> str | None:
    """The path of ``source``'s cache file, written unless an identical file is there;
    ``None`` (after one warning) when it cannot be."""
    path = os.path.join(folder, f"{stem}_{source_hash(source)}.py")
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == source:
                return path
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    except OSError as exc:
        auth.warn_once(f"kernel cache entry {path} cannot be read ({type(exc).__name__}): "
                       "that kernel compiles in memory (later unusable entries are not "
                       "reported)", kind="entry")
        return None
    try:
        _atomic_write(path, source)
    except OSError as exc:
        auth.warn_once(f"kernel cache entry {path} cannot be written ({type(exc).__name__}): "
                       "that kernel compiles in memory (later unusable entries are not "
                       "reported)", kind="entry")
        return None
    return path


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_module(source: str, subdir: str = "", stem: str = "fg"):
    """The module defined by ``source``, executed once per process from this text.

    When the cache folder (``subdir`` of it) is usable, the text is also written to
    ``<folder>/<stem>_<hash>.py`` and the module's functions carry that file name, so
    Numba can key its disk cache on it (see :func:`attach_disk_cache`); otherwise the
    module lives in memory only.
    """
    usable = _usable_folder(subdir)
    key = source_hash(source)
    with _LOCK:
        module = _MODULES.get((usable and usable[1], stem, key))
        if module is None:
            path = usable and _source_file(source, usable[1], stem)
            trust = None
            if path:
                from .sealed_cache import Trust
                trust = Trust(usable[0], usable[2], hashlib.sha256(source.encode()).digest())
            module = _execute(source, f"flowgraph_kernel_{stem}_{key}", path, trust)
            _MODULES[(usable and usable[1], stem, key)] = module
    return module


def _execute(source: str, name: str, path: str | None, trust):
    code = compile(source, path or f"<flowgraph kernel {name}>", "exec", dont_inherit=True)
    module = types.ModuleType(name)
    if path:
        module.__file__ = path
    setattr(module, _TRUST_ATTR, trust)
    # Numba's cached code refers to its module by name: it must be importable.
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def attach_disk_cache(dispatcher, module, cache_class=None) -> None:
    """Give ``dispatcher`` (a function of ``module``) Numba's disk cache, sealed and
    confined to the flowgraph folder (:mod:`kernels.sealed_cache`), when ``module``
    came from a usable cache folder. ``cache_class``: Numba's ``FunctionCache`` by
    default, numba-cuda's ``CUDACache`` for CUDA kernels."""
    from .sealed_cache import SealedCache, sealed_cache_class
    trust = getattr(module, _TRUST_ATTR, None)
    if trust is None or isinstance(dispatcher._cache, SealedCache):
        return
    if cache_class is None:
        from numba.core.caching import FunctionCache as cache_class
    try:
        dispatcher._cache = sealed_cache_class(cache_class)(dispatcher.py_func, trust)
    except (OSError, RuntimeError) as exc:
        auth.warn_once(f"kernel cache: {exc}; that kernel compiles in memory (later "
                       "unusable entries are not reported)", kind="entry")


def purge(source: str) -> None:
    """Forget a kernel: delete its source and Numba's cache files, here and on disk."""
    key = source_hash(source)
    with _LOCK:
        for module_key in [k for k in _MODULES if k[1:] == ("fg", key)]:
            sys.modules.pop(_MODULES.pop(module_key).__name__, None)
        for entry_key in [k for k in _ENTRIES if k[0] == source]:
            del _ENTRIES[entry_key]
    folder = cache_dir()
    if auth.folder_problem(folder, create=False):
        return                            # a folder flowgraph does not use: leave it alone
    for path in [os.path.join(folder, f"fg_{key}.py")] + glob.glob(
            os.path.join(folder, "__pycache__", f"fg_{key}.*")):
        try:
            os.remove(path)
        except OSError:
            pass


_LLVM_CONFIGURED = []

# LLVM vectorizes a loop over several arrays only after run-time checks that they do
# not overlap, and gives up when more than 128 checks would be needed (its default).
# A fused LSTM cell reads 6 arrays and writes 12: it stayed scalar, 5x slower (1.75 ms
# against 0.36 ms at 64x256, float32, one core). The checks run once per row.
LLVM_OPTIONS = ("-vectorize-memory-check-threshold=256",)


def _configure_llvm():
    """Set :data:`LLVM_OPTIONS` once per process, before the first kernel compiles."""
    if not _LLVM_CONFIGURED:
        import llvmlite.binding as llvm
        for option in LLVM_OPTIONS:
            llvm.set_option("flowgraph", option)
        _LLVM_CONFIGURED.append(True)


def compile_kernel(source: str, name: str, arg_types):
    """The compiled entry point of function ``name`` in ``source`` for ``arg_types``
    (Numba types), loaded from the disk cache when possible.

    If loading or compiling fails (a corrupt cache entry), the entry is purged and the
    kernel rebuilt from scratch once; a second failure is raised.
    """
    signature = tuple(arg_types)
    entry = _ENTRIES.get((source, name, signature))
    if entry is not None:
        return entry
    _configure_llvm()
    for attempt in (0, 1):
        try:
            module = load_module(source)
            dispatcher = getattr(module, name)
            with _LOCK:
                attach_disk_cache(dispatcher, module)
                entry = _load_compiled(dispatcher, signature)
                if entry is None:
                    dispatcher.compile(signature)
                    entry = dispatcher.overloads[signature].entry_point
                _ENTRIES[(source, name, signature)] = entry
                return entry
        except Exception:
            if attempt:
                raise
            purge(source)
    raise AssertionError("unreachable")


def _load_compiled(dispatcher, signature):
    """The entry point of ``dispatcher`` for ``signature`` from Numba's disk cache, or
    ``None`` (not cached, or anything unexpected: the caller then takes Numba's own path).

    This is what ``Dispatcher.compile`` does on a cache hit, less its
    ``target_context.refresh()``: that call imports every lowering registry of Numba
    (its linear algebra imports SciPy), about 0.4 s in a new process that only a
    compilation needs; loading machine code needs just the runtime's symbols
    (``rtsys.initialize``). A later compilation in the process refreshes as usual.
    Measured in benchmarks/overhead.py (compile time from the disk cache). The files
    are read through the sealed cache (:mod:`kernels.sealed_cache`): checked before
    they are unpickled, as on Numba's own path.
    """
    from .sealed_cache import SealedCache
    if not isinstance(dispatcher._cache, SealedCache):
        return None      # compiled in memory: no disk cache, nothing to load
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.runtime import rtsys

        with global_compiler_lock:
            existing = dispatcher.overloads.get(signature)
            if existing is not None:
                return existing.entry_point
            context = dispatcher.targetctx
            rtsys.initialize(context)
            cres = dispatcher._cache._load_overload(signature, context)
            if cres is None or cres.objectmode:
                return None
            context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            dispatcher.add_overload(cres)
            dispatcher._cache_hits[signature] += 1
            return cres.entry_point
    except Exception:
        return None

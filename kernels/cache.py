"""The on-disk kernel cache: generated kernel source files that Numba caches beside.

Numba's ``cache=True`` needs each function in a real file, so every generated kernel is
written to ``$FLOWGRAPH_CACHE_DIR/fg_<hash of its source>.py`` (default
``~/.cache/flowgraph``) and imported from there; Numba keeps its compiled machine code
in the ``__pycache__`` folder next to it, keyed by the file's stamp and the argument
types.

Several processes may share the folder: files are written to a unique temporary name
and moved into place with ``os.replace`` (atomic), and Numba writes its own cache files
the same way. A source file whose text is not exactly the expected text (truncated,
edited, corrupt) is rewritten; a Numba cache entry that fails to load is deleted and
the kernel recompiled. Nothing in the cache is trusted without that check.

>>> import tempfile, os
>>> os.environ["FLOWGRAPH_CACHE_DIR"] = tempfile.mkdtemp()
>>> path = source_path("def kernel(x):\\n    return x\\n")
>>> os.path.basename(path).startswith("fg_")
True
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import sys
import threading
import uuid

_LOCK = threading.Lock()
_MODULES: dict[str, object] = {}     # source hash -> imported module, per process
# (source, name, argument types) -> entry point, per process: the steps of a plan (the T
# time steps of an RNN) share a few kernels, resolved once here rather than going through
# the module lookup, Numba's signature normalization and its compile lock at every step.
_ENTRIES: dict[tuple, object] = {}


def cache_dir() -> str:
    """The kernel cache folder (``FLOWGRAPH_CACHE_DIR`` or ``~/.cache/flowgraph``)."""
    path = os.environ.get("FLOWGRAPH_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "flowgraph")
    return os.path.abspath(path)


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:24]


def source_path(source: str) -> str:
    """Write ``source`` to its cache file unless an identical file is there; return
    the path. A file with other contents under that name is replaced (never trusted).
    """
    folder = cache_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"fg_{source_hash(source)}.py")
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == source:
                return path
    except (OSError, UnicodeDecodeError):
        pass
    _atomic_write(path, source)
    return path


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_module(source: str):
    """Import the module holding ``source`` from the cache folder (once per process)."""
    key = source_hash(source)
    with _LOCK:
        module = _MODULES.get(key)
        if module is None:
            module = _import(source_path(source), key)
            _MODULES[key] = module
    return module


def _import(path: str, key: str):
    name = f"flowgraph_kernel_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Numba's cached code refers to its module by name: it must be importable.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def purge(source: str) -> None:
    """Forget a kernel: delete its source and Numba's cache files, here and on disk."""
    key = source_hash(source)
    with _LOCK:
        _MODULES.pop(key, None)
        sys.modules.pop(f"flowgraph_kernel_{key}", None)
        for entry_key in [k for k in _ENTRIES if k[0] == source]:
            del _ENTRIES[entry_key]
    folder = cache_dir()
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
            dispatcher = getattr(load_module(source), name)
            with _LOCK:
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
    Measured in benchmarks/overhead.py (compile time from the disk cache).
    """
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

"""What the kernel cache trusts: a folder only you can write, and files sealed with your key.

Loading a cached kernel runs code: the generated module is executed and Numba unpickles
its index (``.nbi``) and machine code (``.nbc``). Anyone who could plant a file there
would run code in every process using the folder, so nothing read from the cache is
used before two checks:

* **The folder** (:func:`folder_problem`) must be a directory owned by you, not
  writable by group or others, with its owner-write bit set. Otherwise the cache is
  not used at all (kernels compile in memory, one warning per process).
* **Every Numba file** is sealed on write and checked on read (:func:`seal`,
  :func:`unseal`): an HMAC-SHA256 over the file's name relative to the cache folder,
  the SHA-256 of the kernel source it belongs to, and its bytes, stored in front of
  the bytes. The check runs on the exact bytes that are then unpickled; a file that
  fails it is deleted and the kernel recompiled. Binding the name and the source
  makes a file swapped from another kernel (or another signature) fail as well.

The key is 32 random bytes in ``$FLOWGRAPH_CACHE_KEY`` or, by default,
``$XDG_CONFIG_HOME/flowgraph/kernel-cache.key`` (``~/.config/...``): created on first
use with mode 0600, and used only if it is a regular file owned by you that nobody
else can read or write. It is kept *outside* the cache folder on purpose: a cache
folder copied or restored from elsewhere (a shared disk, a CI cache) then brings no key
that would make its files trusted; its entries are rebuilt instead. Generated source
files need no seal: the module is executed from the text flowgraph generated in
memory, never from the file or a ``.pyc`` (the file is only what Numba keys its cache on).

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()        # mode 0700, owned by you
>>> folder_problem(folder) is None
True
>>> os.chmod(folder, 0o777)
>>> folder_problem(folder)
'writable by group or others (mode 0o777)'
>>> key = os.urandom(32)
>>> blob = seal(key, "__pycache__/a.nbi", b"source digest", b"payload")
>>> unseal(key, "__pycache__/a.nbi", b"source digest", blob)
b'payload'
>>> unseal(key, "__pycache__/b.nbi", b"source digest", blob) is None  # another name
True
"""
from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
import warnings

from flowgraph.errors import KernelCacheWarning

MAGIC = b"FGKC\x01\n"        # flowgraph kernel cache, seal format 1
_TAG_BYTES = 32
_KEY_BYTES = 32

_LOCK = threading.Lock()
_WARNED: set[str] = set()
_KEYS: dict[str, object] = {}          # key path -> key bytes, or the problem (str)


def warn_once(message: str, kind: str | None = None) -> None:
    """One :class:`KernelCacheWarning` per ``kind`` of problem (by default, per distinct
    message) per process: a folder full of bad entries gives one warning, not one each."""
    with _LOCK:
        if (kind or message) in _WARNED:
            return
        _WARNED.add(kind or message)
    warnings.warn(message, KernelCacheWarning, stacklevel=3)


def folder_problem(path: str, create: bool = True) -> str | None:
    """Why ``path`` may not hold cache files (``None``: it may). Creates it (mode
    0700) when missing and ``create``.

    Refused: not a directory, not owned by you, writable by group or others (anyone
    there could plant code), or read-only (owner-write bit clear: respected even for
    root, whom the OS would let write anyway).
    """
    if create:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            return f"cannot be created ({type(exc).__name__}: {exc.strerror or exc})"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be read ({type(exc).__name__}: {exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if hasattr(os, "geteuid"):
        if st.st_uid != os.geteuid():
            return f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
        if st.st_mode & 0o022:
            return f"writable by group or others (mode {oct(stat.S_IMODE(st.st_mode))})"
        if not st.st_mode & stat.S_IWUSR:
            return f"read-only (mode {oct(stat.S_IMODE(st.st_mode))})"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


def key_path() -> str:
    """Where the cache key lives (``FLOWGRAPH_CACHE_KEY`` or the config folder)."""
    explicit = os.environ.get("FLOWGRAPH_CACHE_KEY")
    if explicit:
        return os.path.abspath(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config")
    return os.path.join(os.path.abspath(config), "flowgraph", "kernel-cache.key")


def load_key():
    """``(key bytes, None)``, or ``(None, problem)`` when no trustworthy key can be had.

    Created on first use: written to a private temporary file and linked into place
    (``os.link`` fails if another process got there first; then that key is used).
    """
    path = key_path()
    with _LOCK:
        cached = _KEYS.get(path)
    if cached is None:
        cached = _read_or_create_key(path)
        with _LOCK:
            _KEYS[path] = cached
    return (cached, None) if isinstance(cached, bytes) else (None, cached)


def _read_or_create_key(path):
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"the key file {path} cannot be read ({exc.strerror or exc})"
    except ValueError as exc:
        return f"the key file {path} {exc}"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(_KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass                        # another process created it first: use theirs
        finally:
            os.unlink(tmp)
        return _read_key(path)
    except (OSError, ValueError) as exc:
        return f"the key file {path} cannot be created ({exc})"


def _read_key(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        if hasattr(os, "geteuid"):
            if st.st_uid != os.geteuid():
                raise ValueError(f"is owned by uid {st.st_uid}, not by you")
            if st.st_mode & 0o077:
                raise ValueError(f"is readable or writable by others (mode "
                                 f"{oct(stat.S_IMODE(st.st_mode))}; expected 0o600)")
        key = f.read(_KEY_BYTES + 1)
    if len(key) != _KEY_BYTES:
        raise ValueError(f"holds {len(key)} bytes, expected {_KEY_BYTES}")
    return key


def _tag(key: bytes, name: str, source_digest: bytes, payload: bytes) -> bytes:
    mac = hmac.new(key, b"flowgraph kernel cache\0", hashlib.sha256)
    for part in (name.replace(os.sep, "/").encode(), source_digest):
        mac.update(len(part).to_bytes(8, "little"))
        mac.update(part)
    mac.update(payload)
    return mac.digest()


def seal(key: bytes, name: str, source_digest: bytes, payload: bytes) -> bytes:
    """``payload`` with its tag in front, for the file ``name`` (relative to the cache
    folder) of the kernel whose source has SHA-256 ``source_digest``."""
    return MAGIC + _tag(key, name, source_digest, payload) + payload


def unseal(key: bytes, name: str, source_digest: bytes, blob: bytes) -> bytes | None:
    """The payload of a sealed ``blob`` if its tag is right for ``name`` and
    ``source_digest`` under ``key``; ``None`` otherwise (never partially trusted)."""
    head = len(MAGIC) + _TAG_BYTES
    if len(blob) < head or not blob.startswith(MAGIC):
        return None
    payload = blob[head:]
    if not hmac.compare_digest(blob[len(MAGIC):head],
                               _tag(key, name, source_digest, payload)):
        return None
    return payload

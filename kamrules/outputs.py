"""Safe output files: refuse paths that aren't ours to write, write complete files or nothing.

Every command that writes a file the user named (``check --output``, ``import
--skip-invalid``, ``test --junit``, ...) calls :func:`check_output_path` before it
starts and writes through :func:`atomic_output`:

* refused (:class:`OutputRefused`, exit 2): the store itself or one of its
  ``-wal``/``-shm``/``-journal`` companions (also through a symlink, a relative
  path or a hard link: files are compared by device and inode), one of the
  command's input files (or a file inside an input folder), an existing path
  that is not a plain file (a folder, a FIFO, a device), a path whose folder
  does not exist;
* the text goes to an unnamed temporary file in the target's folder
  (``O_TMPFILE`` where the system has it, else a hidden ``.kamrules-*.tmp`` file),
  is flushed and fsync'ed, and only then linked into place with
  ``os.replace``: a full disk, an error or a crash leaves the previous file (or
  none) and no partial file. With ``O_TMPFILE`` even ``kill -9`` leaves nothing
  behind (but for the instant of the final rename); elsewhere ``kill -9`` can leave a hidden
  ``.kamrules-*.tmp`` file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from kamrules.errors import InputError

STORE_COMPANIONS = ("", "-wal", "-shm", "-journal")


class OutputRefused(InputError):
    """An output path that must not be written (exit 2); nothing was written."""


def _identity(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _same(path: Path, other) -> bool:
    """Same file: same inode when both exist, else the same resolved name."""
    a, b = _identity(path), _identity(other)
    if a is not None and b is not None:
        return a == b
    return os.path.realpath(path) == os.path.realpath(other)


def _input_files(inputs: Iterable) -> Iterator[Path]:
    """The input paths, and for a folder the files directly inside it (what a command reads)."""
    for p in inputs:
        if p is None:
            continue
        p = Path(p)
        yield p
        if p.is_dir():
            try:
                yield from (c for c in p.iterdir())
            except OSError:
                continue


def check_output_path(path, store_path=None, inputs: Iterable = (), what: str = "output file") -> Path:
    """Refuse (OutputRefused, exit 2) an output ``path`` that isn't ours to write; returns it as a Path.

    ``store_path``: the store of the command (its companions count too); ``inputs``: the
    files and folders the command reads. ``what`` names the option in the message.
    """
    path = Path(path)
    if str(path) in ("", "-"):
        raise OutputRefused(f"{what} {str(path)!r}: expected a file name")
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:  # e.g. a dangling symlink: it would be written through to who knows where
            raise OutputRefused(f"{path}: cannot use as {what}: {e.strerror or e}") from e
        if stat.S_ISDIR(mode):
            raise OutputRefused(f"{path}: is a folder (expected a file name for the {what})")
        if not stat.S_ISREG(mode):
            raise OutputRefused(
                f"{path}: is not a plain file (a FIFO, socket or device); refusing to write the {what} there"
            )
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise OutputRefused(
            f"{path}: folder {path.parent} does not exist (create it first, e.g. mkdir -p {path.parent})"
        )
    if store_path is not None:
        for suffix in STORE_COMPANIONS:
            if _same(path, str(store_path) + suffix):
                whose = "the store" if not suffix else f"the store's {suffix[1:]} file"
                raise OutputRefused(
                    f"{path}: is {whose} ({store_path}); refusing to write the {what} over it (choose another file)"
                )
    for p in _input_files(inputs):
        if p.is_dir():
            if _same(path, p):
                raise OutputRefused(f"{path}: is an input folder of this command; refusing to write the {what} there")
            continue
        if _same(path, p):
            raise OutputRefused(
                f"{path}: is an input file of this command ({p}); refusing to write the {what} over it (choose another file)"
            )
    return path


def _linkat_empty_path(fd: int, name: Path) -> None:
    """linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH): names an O_TMPFILE where /proc can't (another mount
    namespace gives EXDEV); needs CAP_DAC_READ_SEARCH on older kernels."""
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(fd, b"", -100, os.fsencode(name), 0x1000) != 0:
        err = ctypes.get_errno() or errno.EPERM
        raise OSError(err, os.strerror(err), str(name))


def _copy_to_named(fd: int, target: Path) -> Path:
    """Last resort when an O_TMPFILE can't be linked: copy it to a hidden named temp file."""
    out_fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(out_fd, stat.S_IMODE(os.fstat(fd).st_mode))
        with os.fdopen(os.dup(fd), "rb") as src, os.fdopen(out_fd, "wb") as dst:
            src.seek(0)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _link_tmpfile(fd: int, target: Path) -> None:
    """Give an O_TMPFILE file a name (a temporary one beside the target), then rename it into place."""
    name = None
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
        try:
            try:
                os.link(f"/proc/self/fd/{fd}", candidate, follow_symlinks=True)
            except FileExistsError:
                raise
            except OSError:
                _linkat_empty_path(fd, candidate)
            name = candidate
            break
        except FileExistsError:
            continue
        except OSError:
            name = _copy_to_named(fd, target)
            break
    if name is None:  # pragma: no cover - 100 random names taken
        raise OSError(f"{target}: cannot name the temporary file")
    try:
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _open_tmp(folder: Path) -> tuple[int, str | None]:
    """(fd, name): an unnamed O_TMPFILE (name None) where possible, else a hidden named temp file."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(folder, flag | os.O_RDWR, 0o666), None  # RDWR: a last-resort copy reads it back
        except OSError:  # the file system does not support it: fall back to a named file
            pass
    fd, name = tempfile.mkstemp(prefix=".kamrules-", suffix=".tmp", dir=folder)
    return fd, name


@contextlib.contextmanager
def atomic_output(
    path, encoding: str = "utf-8", newline: str | None = "", binary: bool = False, errors: str = "strict"
):
    """Open a temporary file for writing; on a clean exit it replaces ``path`` (fsync'ed), on an error
    (full disk, exception, KeyboardInterrupt) it is dropped and ``path`` is left as it was.

    A symlink ``path`` is followed: its target is replaced (the link stays a link).
    """
    target = Path(os.path.realpath(path))
    folder = target.parent
    fd, name = _open_tmp(folder)
    try:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:  # a new file: the usual rw-rw-rw- less the umask
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding, newline=newline, errors=errors)
    except BaseException:
        os.close(fd)
        if name:
            with contextlib.suppress(OSError):
                os.unlink(name)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if name is None:
                _link_tmpfile(f.fileno(), target)
        if name is not None:
            os.replace(name, target)
            name = None
    finally:
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)
    _fsync_folder(folder)


class _Discard(Exception):
    pass


class PendingOutput:
    """:func:`atomic_output` for a file written across many calls (e.g. the --skip-invalid file):
    ``.file`` to write to, then ``.commit()`` (it replaces the target) or ``.discard()`` (nothing written)."""

    def __init__(self, path, **kwargs):
        self._cm = atomic_output(path, **kwargs)
        self.file = self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def discard(self) -> None:
        with contextlib.suppress(_Discard):
            self._cm.__exit__(_Discard, _Discard(), None)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every system can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path, text: str | Iterable[str], encoding: str = "utf-8", newline: str | None = "") -> None:
    """Write ``text`` (one string or chunks) to ``path`` through :func:`atomic_output`."""
    chunks = [text] if isinstance(text, str) else text
    with atomic_output(path, encoding=encoding, newline=newline) as f:
        for chunk in chunks:
            f.write(chunk)

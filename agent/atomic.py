"""Crash-safe file writes: a reader sees the old content or the new, never a mix.

The data goes to a temporary file in the same directory, is flushed and
fsync'ed, then renamed over the target; the directory is fsync'ed so that the
rename itself survives a power cut. A crash can leave the temporary file
behind: :func:`remove_temporaries` deletes those at the next start.

Directories are created with explicit modes, whatever the umask, and
:func:`check_private_tree` refuses files and directories that other users
could write, as OpenSSH's ``StrictModes`` does.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

#: the names atomic_write's temporary files get: ".NAME.XXXXXXXX.tmp", as tempfile.mkstemp
#: names them (the same eight characters of :data:`_NAME_CHARACTERS`); compiled by ``re``'s
#: cache when first looked for, not at import
_TEMPORARY = r"^\..+\.[a-z0-9_]{8}\.tmp$"
_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
#: how many names are tried before giving up (tempfile's TMP_MAX)
_NAME_TRIES = 10000
#: tempfile.mkstemp's flags for a binary file (os.open adds O_CLOEXEC)
_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0))


class InsecurePermissions(PermissionError):
    """A file or directory the agent trusts can be changed by other users."""


def ensure_directory(path: str | os.PathLike[str], mode: int = 0o700) -> Path:
    """*path* as a directory; missing levels are created with *mode* (not the
    umask's choice). An existing directory is left as it is."""
    directory = Path(path)
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(level, mode)  # mkdir's mode is filtered through the umask
    return Path(path)


def writable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether a user other than the agent's (or root) could change *path*."""
    st = os.stat(path)
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) or st.st_uid not in (0, os.getuid())


def check_private_tree(root: str | os.PathLike[str]) -> None:
    """Refuse *root* if it or anything in it is writable by other users.

    Raises :class:`InsecurePermissions` naming every offending path.
    """
    offenders = [Path(root)] if writable_by_others(root) else []
    for parent, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(parent, name)
            if not path.is_symlink() and writable_by_others(path):
                offenders.append(path)
    if offenders:
        shown = ", ".join(f"{p} (mode {stat.S_IMODE(os.stat(p).st_mode):04o})"
                          for p in offenders[:5])
        raise InsecurePermissions(
            f"other users could change {shown}{' ...' if len(offenders) > 5 else ''};"
            " a local user could plant keys, certificates or users there."
            f" Run: chmod -R go-w {root} (and make sure the agent's user owns it)")


def remove_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of writes a crash interrupted, under *root*."""
    removed = []
    for parent, _, files in os.walk(root):
        for name in files:
            if re.match(_TEMPORARY, name):
                path = Path(parent, name)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace *path* with *data* atomically; the file gets permission *mode*."""
    install_temporary(write_temporary(path, data, mode), path)


def write_temporary(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> Path:
    """The first half of :func:`atomic_write`: *data* in a new temporary file
    beside *path* (permission *mode*), flushed and fsync'ed; its path."""
    target = Path(path)
    # a private file gets a private directory; a public one (0644) a 0755 one
    ensure_directory(target.parent, 0o700 if not mode & 0o077 else 0o755)
    fd, tmp_name = _create_temporary(target.parent, f".{target.name}.", ".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name)


def _create_temporary(directory: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(suffix, prefix, directory)``: a new file (mode 0600, opened for
    reading and writing, created exclusively, not through a symbolic link) named *prefix*,
    eight random characters and *suffix*; its descriptor and absolute path. Without
    tempfile, whose import (with random's) is a twentieth of ``cmp-agent cmp ir``'s."""
    for _ in range(_NAME_TRIES):
        name = "".join(_NAME_CHARACTERS[b % len(_NAME_CHARACTERS)] for b in os.urandom(8))
        path = os.path.join(directory, prefix + name + suffix)
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            continue  # taken: another name
        return fd, os.path.abspath(path)
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


def install_temporary(tmp: Path, path: str | os.PathLike[str]) -> None:
    """The second half of :func:`atomic_write`: rename *tmp* (from
    :func:`write_temporary` for *path*) over *path*, durably."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(Path(path).parent)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink inside *directory* durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

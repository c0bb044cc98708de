"""Files written in two steps (a temporary name, then a rename), and the clean-up of what a
killed process left behind: only names that carry the process id of a writer that is gone."""

import os
import shutil
import tempfile


def temporary_prefix(target):
    """The prefix of a temporary file or directory for ``target``: ``.<name>.<pid>.``."""
    return f".{os.path.basename(os.fspath(target))}.{os.getpid()}."


def alive(pid):
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2 ** 31  # someone else's process (or an id no process can have)
    return True


def stale_leftovers(directory, target, suffixes):
    """Paths in ``directory`` named ``.<target name>.<pid>.<anything><suffix>`` whose pid is no
    running process (this one's included: it is not writing them now)."""
    prefix = f".{os.path.basename(os.fspath(target))}."
    out = []
    for entry in os.listdir(directory):
        if not (entry.startswith(prefix) and entry.endswith(tuple(suffixes))):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not alive(int(pid))):
            out.append(os.path.join(directory, entry))
    return out


def remove(path):
    """Remove a file or a directory tree, ignoring what is already gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def atomic_write(filepath, write, overwrite=True):
    """Write ``filepath`` through ``write(f)`` (a binary file) under a temporary name beside it,
    then rename it into place: a crash never leaves a half-written file under the final name.
    Temporary files of earlier writers of the same path that are gone are removed first."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} already exists; pass overwrite=True to replace it.")
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    for leftover in stale_leftovers(directory, filepath, (".tmp",)):  # from a killed save
        remove(leftover)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(filepath), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

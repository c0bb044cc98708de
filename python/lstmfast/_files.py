"""Files written in two steps (a temporary name, then a rename), and the clean-up of what a
killed process left behind: only names that carry the process id of a writer that is gone."""

import os
import shutil


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

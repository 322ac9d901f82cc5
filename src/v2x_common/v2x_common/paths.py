"""The directories a node writes: made when missing, and said so; refused, with the
command that fixes it, when this process cannot write them or they belong to nobody.

Pure Python (no rclpy); errors are ParameterError naming the parameter. This module
imports params, never the other way round: a node calls :func:`make_dirs` with its
directory parameters after reading them.
"""

import grp
import os
import pwd
import stat

from v2x_common.params import ParameterError

#: Owners no service should write as: a uid without an account (a disk from another
#: machine, a deleted user) and the overflow user nobody.
_NOBODY = 65534


def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def describe(path: str) -> str:
    """'owner v2x:v2x, mode 0750'."""
    st = os.stat(path)
    return (f'owner {_user(st.st_uid) or st.st_uid}:{_group(st.st_gid)}, '
            f'mode {stat.S_IMODE(st.st_mode):04o}')


def _me() -> str:
    return _user(os.geteuid()) or str(os.geteuid())


def prepare_dir(path: str, parameter: str) -> str | None:
    """Make path a directory this process can write; a line saying what was created, or
    None when it was there. Raises ParameterError naming parameter and the fix."""
    path = os.path.abspath(path)
    missing = []
    existing = path
    while not os.path.lexists(existing):
        missing.append(existing)
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ParameterError(parameter, f'{existing} is not a directory')
    if missing:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ParameterError(parameter, f'cannot create {path}: {exc.strerror} ({existing} '
                                f'has {describe(existing)}; this process runs as {_me()}); '
                                f'create it: sudo install -d -o {_me()} {path}') from None
        made = ', '.join(reversed(missing))
        line = f'created {made} ({describe(path)})'
        if os.geteuid() == 0:
            line += ('; made as root: if the service runs as another user (deploy/README.md: '
                     f'v2x), sudo chown -R v2x:v2x {missing[-1]}')
        return line
    st = os.stat(path)
    owner = _user(st.st_uid)
    if owner is None or st.st_uid == _NOBODY:
        who = f'uid {st.st_uid}, which is no user of this host' if owner is None else \
            f'{owner} (the overflow user)'
        raise ParameterError(parameter, f'{path} belongs to {who}: refusing to write there; '
                            f'give it to the service user: sudo chown {_me()} {path}')
    if not os.access(path, os.W_OK | os.X_OK):
        raise ParameterError(parameter, f'{path} has {describe(path)} and this process runs '
                            f'as {_me()}: it cannot write there; sudo chown {_me()} {path} '
                            '(or run the node as its owner)')
    return None


def make_dirs(**dirs: str) -> list[str]:
    """Make each directory parameter's directory one this process can write (see
    :func:`prepare_dir`); returns a line for each one created, for the node's log.
    ParameterError names the parameter and the fix (a directory that cannot be created,
    or that belongs to no user of this host or to nobody)."""
    return [line for name, path in dirs.items() if (line := prepare_dir(path, name))]

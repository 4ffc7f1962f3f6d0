"""``--user``/``--group``: resolve them in the master, switch to them in each forked worker."""

from __future__ import annotations

import grp
import os
import pwd

from porch.errors import ConfigError

__all__ = ["drop_privileges", "resolve_ids"]


def resolve_ids(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    """The uid and gid the workers switch to (names or numbers); ``ConfigError`` if unknown.

    A user name also selects that user's primary group unless ``group`` is given.
    """
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            if not user.isdigit():
                raise ConfigError(f"--user: no such user {user!r}") from None
            uid = int(user)
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"--group: no such group {group!r}") from None
    return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Switch the current (worker) process to ``gid`` and ``uid``: groups first, then the user."""
    if uid is None and gid is None:
        return
    if os.getuid() == 0:
        target_gid = gid if gid is not None else os.getgid()
        try:
            name = pwd.getpwuid(uid).pw_name if uid is not None else None
        except KeyError:
            name = None
        if name is not None:
            os.initgroups(name, target_gid)
        else:
            os.setgroups([target_gid])
    if gid is not None and gid != os.getgid():
        os.setgid(gid)
    if uid is not None and uid != os.getuid():
        os.setuid(uid)

"""Create or inherit the listening sockets: TCP, UNIX, ``fd://N`` and systemd ``LISTEN_FDS``.

Bind forms::

    HOST:PORT  127.0.0.1:8000, localhost:8000, [::1]:8000   (port 0: ephemeral)
    :PORT      all IPv4 interfaces (0.0.0.0)
    HOST       port 8000
    unix:PATH  a UNIX socket; a stale socket file nobody listens on is replaced
    fd://N     an inherited listening stream socket

When systemd passes sockets (``LISTEN_PID`` is our pid, ``LISTEN_FDS`` = n) they
are used instead of the bind list, and the variables are removed from the
environment so that no child mistakes them for its own.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from porch.errors import BindError

__all__ = ["DEFAULT_PORT", "Listener", "create_listeners", "display_name", "parse_tcp_bind"]

DEFAULT_PORT = 8000
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3)
_SYSTEMD_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this host",
    errno.EBADF: "bad file descriptor",
    errno.ENOTSOCK: "not a socket",
}


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening socket, the name shown in logs and the UNIX socket file porch created."""

    sock: socket.socket
    name: str
    unix_path: str | None = None

    def close(self) -> None:
        """Close the socket and remove the UNIX socket file porch created."""
        self.sock.close()
        if self.unix_path is not None:
            try:
                if stat.S_ISSOCK(os.lstat(self.unix_path).st_mode):
                    os.unlink(self.unix_path)
            except OSError:
                pass


def create_listeners(
    binds: Sequence[str],
    *,
    backlog: int,
    socket_mode: int | None,
    environ: MutableMapping[str, str],
    owner: tuple[int | None, int | None] = (None, None),
) -> list[Listener]:
    """Bind (or inherit) every listener; raise :class:`BindError` naming the failing one.

    ``owner`` is the workers' (uid, gid) (``--user``/``--group``): the UNIX socket
    files porch creates are given to them, as gunicorn does, so that the group can
    be the web server's and a socket file is not left root's.
    """
    listeners: list[Listener] = []
    try:
        systemd_fds = _systemd_fds(environ)
        if systemd_fds:
            for fd in systemd_fds:
                listeners.append(_inherit_fd(fd, f"fd://{fd} (systemd)"))
        else:
            for bind in binds:
                listeners.append(_create_one(bind, backlog=backlog, socket_mode=socket_mode))
        uid, gid = owner
        for listener in listeners:
            if listener.unix_path is not None and (uid is not None or gid is not None):
                try:
                    os.chown(listener.unix_path, -1 if uid is None else uid,
                             -1 if gid is None else gid)  # fmt: skip
                except OSError as exc:
                    raise BindError(f"cannot give {listener.name} to --user/--group: "
                                    f"{_reason(exc)}") from exc  # fmt: skip
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    for listener in listeners:
        listener.sock.setblocking(False)
        listener.sock.set_inheritable(True)
    return listeners


def _create_one(bind: str, *, backlog: int, socket_mode: int | None) -> Listener:
    if bind.startswith("unix:"):
        return _bind_unix(bind.removeprefix("unix:").removeprefix("//"), bind, backlog, socket_mode)
    if bind.startswith("fd://"):
        text = bind.removeprefix("fd://")
        if not text.isdigit():
            raise BindError(f"invalid bind {bind!r}: expected fd://N with N a file descriptor")
        return _inherit_fd(int(text), bind)
    host, port = parse_tcp_bind(bind)
    return _bind_tcp(host, port, bind, backlog)


def parse_tcp_bind(bind: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``HOST`` into host and port."""
    text = bind.removeprefix("tcp://").removeprefix("http://")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BindError(f"invalid bind {bind!r}: expected [IPV6]:PORT")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") > 1:
        raise BindError(f"invalid bind {bind!r}: IPv6 addresses need brackets, as in [::1]:8000")
    else:
        host, sep, port_text = text.partition(":")
        host = host or "0.0.0.0"
        port_text = port_text if sep else str(DEFAULT_PORT)
    if not host:
        raise BindError(f"invalid bind {bind!r}: empty host")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise BindError(f"invalid bind {bind!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def _reason(exc: OSError) -> str:
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or str(exc)).lower()


def _bind_tcp(host: str, port: int, bind: str, backlog: int) -> Listener:
    # An ASCII host goes as bytes: a str host makes getaddrinfo() load the idna
    # codec (and unicodedata), which every worker forked afterwards would hold.
    query_host = host.encode("ascii") if host.isascii() else host
    try:
        infos = socket.getaddrinfo(
            query_host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot bind {bind}: cannot resolve {host!r} ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # So that [::]:8000 and 0.0.0.0:8000 can both be bound.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {bind}: {_reason(exc)}") from exc
    return Listener(sock=sock, name=display_name(sock))


def _bind_unix(path: str, bind: str, backlog: int, socket_mode: int | None) -> Listener:
    if not path:
        raise BindError(f"invalid bind {bind!r}: expected unix:/path/to/socket")
    if path.startswith("@"):
        return _bind_abstract(path, bind, backlog, socket_mode)
    _remove_stale_socket(path, bind)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the file appear with the right mode; chmod makes it exact.
    old_umask = os.umask(0o777 & ~socket_mode) if socket_mode is not None else None
    try:
        sock.bind(path)
        if socket_mode is not None:
            os.chmod(path, socket_mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {bind}: {_reason(exc)}") from exc
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    return Listener(sock=sock, name=f"unix:{path}", unix_path=path)


def _bind_abstract(path: str, bind: str, backlog: int, socket_mode: int | None) -> Listener:
    """``unix:@name``: a socket in Linux's abstract namespace (no file, gone with porch)."""
    if len(path) < 2:
        raise BindError(f"invalid bind {bind!r}: expected unix:@name")
    if socket_mode is not None:
        raise BindError(f"cannot bind {bind}: --socket-mode needs a socket file; {path} has none")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("\0" + path[1:])
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {bind}: {_reason(exc)}") from exc
    return Listener(sock=sock, name=f"unix:{path}")


def _remove_stale_socket(path: str, bind: str) -> None:
    """Remove ``path`` if it is a socket file nobody listens on (left by a crash)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(f"cannot bind {bind}: {_reason(exc)}") from exc
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot bind {bind}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    except BlockingIOError:
        pass  # a full backlog: somebody listens
    except OSError as exc:
        raise BindError(f"cannot bind {bind}: {_reason(exc)}") from exc
    finally:
        probe.close()
    raise BindError(f"cannot bind {bind}: address already in use (a server listens on it)")


def _inherit_fd(fd: int, bind: str) -> Listener:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot use {bind}: {_reason(exc)}") from exc
    problem = None
    if sock.type != socket.SOCK_STREAM:
        problem = "not a stream socket"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "not a listening socket"
    if problem is not None:
        sock.detach()  # the descriptor is not ours to close
        raise BindError(f"cannot use {bind}: {problem}")
    return Listener(sock=sock, name=display_name(sock))


def _systemd_fds(environ: MutableMapping[str, str]) -> list[int]:
    """The descriptors systemd passed to this process (sd_listen_fds(3)), if any."""
    pid_text, count_text = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    if not pid_text.isdigit() or int(pid_text) != os.getpid():
        return []
    for name in _SYSTEMD_VARS:
        environ.pop(name, None)
    if not count_text.isdigit():
        raise BindError(f"invalid LISTEN_FDS={count_text!r} from systemd")
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count_text)))


def display_name(sock: socket.socket) -> str:
    """``http://127.0.0.1:8000``, ``http://[::1]:8000`` or ``unix:/path`` for a bound socket."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode("utf-8", "backslashreplace")
        return f"unix:{address or f'fd {sock.fileno()}'}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        return f"http://[{host}]:{port}"
    return f"http://{host}:{port}"

"""Warm starts: worker processes forked from a process that has imported torch already.

A fresh interpreter per model pays ``import torch`` (and torchvision, timm, transformers) every time:
about 4 s of the 6 s a timm model took in the zoo, where the build and the analysis took under 1 s. A
*zygote* (``python -m torchscan.zoo.zygote``) imports them once and forks one child per job on request;
each child is a new process (its own copy of the zygote's memory, copy-on-write), so a crash, a hang or
an allocation past its limit still takes only that child, and nothing one model does reaches the next.

The zygote runs no torch operation before it forks (imports only: no thread pool exists to be lost in
the fork) and holds no thread. A request is a Unix socket (the job's channel) and a file (its stderr),
passed to the zygote as file descriptors (``SCM_RIGHTS``); the zygote forks, answers the child's pid
and, once the child is reaped, writes its exit status on the channel as the line ``{"exit": STATUS}``
(negative: the signal that ended it). The zygote ends when its stdin closes (the process that started
it is gone), killing the children it still has.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from torchscan.collector import frozen_after

__all__ = ["EXIT_KEY", "Zygote", "available", "environment", "main", "modules_for"]

EXIT_KEY = "exit"
"""The key of the line the zygote writes on a child's channel once the child is reaped."""

_PID = struct.Struct("!q")
_POLL = 0.05
"""Seconds between the zygote's looks for children that ended."""

_SOURCE = str(Path(__file__).resolve().parents[2])
"""The folder holding this torchscan package: the zygote imports the same one."""


def available() -> bool:
    """Whether this platform can fork and pass descriptors over Unix sockets (Linux, macOS; not Windows)."""
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


def modules_for(target: str) -> tuple[str, ...]:
    """The model libraries a job building ``target`` imports (a zygote per set): a torchvision name
    imports torchvision, ``timm:NAME`` timm, ``hf:TYPE`` transformers; a file or module factory none
    beyond torch and torchvision, which every zygote imports (it imports what it needs in the child)."""
    source, _, _ = target.rpartition(":")
    if not source:
        return ("torchvision",)
    return {"timm": ("timm",), "hf": ("transformers",)}.get(source, ())


def environment() -> dict[str, str]:
    """This environment with this torchscan first on ``PYTHONPATH``: a worker imports the same package."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(part for part in (_SOURCE, path) if part)}


class Zygote:
    """A running zygote that has imported ``modules``; :meth:`fork` is safe from several threads."""

    def __init__(self, modules: Sequence[str]) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "torchscan.zoo.zygote", str(theirs.fileno()), *modules],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=environment(),
                start_new_session=True,
            )
        self._control = mine
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self._process.poll() is None

    def fork(self, channel: socket.socket, stderr: int) -> int:
        """A new child serving a job over ``channel`` (its other end stays here), its stderr to the
        file ``stderr``; its pid (the leader of its own process group). ``OSError`` if the zygote is gone."""
        with self._lock:
            socket.send_fds(self._control, [b"f"], [channel.fileno(), stderr])
            answer = b""
            while len(answer) < _PID.size:
                part = self._control.recv(_PID.size - len(answer))
                if not part:
                    raise ConnectionError("the warm-start process ended")
                answer += part
        return int(_PID.unpack(answer)[0])

    def close(self) -> None:
        """End the zygote (it kills the children it still has) and reap it."""
        self._control.close()
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait()


def _child(channel_fd: int, stderr_fd: int, inherited: Sequence[int]) -> None:
    """The forked child: a new session, stderr (and stdout: model prints) to the job's file, then the
    worker's loop over the job's channel. Never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group (the zygote sets it too: whichever runs first)
        for fd in inherited:  # the zygote's control socket, its stdin and the other children's channels
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(stderr_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        faulthandler.enable()
        from torchscan.zoo.child import serve

        channel = socket.socket(fileno=channel_fd)
        code = serve(channel.makefile("rb"), channel.makefile("w", encoding="utf-8"))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _reap(children: dict[int, socket.socket]) -> None:
    """Each child that ended: its status written on its channel, the channel closed."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = children.pop(pid, None)
        if channel is None:
            continue
        line = "\n" + json.dumps({EXIT_KEY: os.waitstatus_to_exitcode(status)}) + "\n"
        with contextlib.suppress(OSError):  # the job's side closed it already
            channel.sendall(line.encode())
        channel.close()


def main(argv: Sequence[str]) -> int:
    """``python -m torchscan.zoo.zygote CONTROL_FD [MODULE...]``: import, then fork on request."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[0]))
    with frozen_after():  # imported once for every child: frozen (``gc.freeze``), no child's collection walks them
        for name in (*argv[1:], "torchvision"):  # torchvision: the analysis imports it on a first model
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        import torchscan.zoo.analyse  # noqa: F401 - torch, torch.fx, FakeTensor and the analysis, imported once

    children: dict[int, socket.socket] = {}
    try:
        while True:
            ready, _, _ = select.select([control, sys.stdin], [], [], _POLL)
            _reap(children)
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                return 0  # the process that started us is gone
            if control not in ready:
                continue
            _, fds, _, _ = socket.recv_fds(control, 1, 2)
            if len(fds) != 2:
                return 0  # the control socket closed
            channel_fd, stderr_fd = fds
            inherited = [control.fileno(), sys.stdin.fileno(), *(other.fileno() for other in children.values())]
            pid = os.fork()
            if pid == 0:
                _child(channel_fd, stderr_fd, inherited)
            with contextlib.suppress(OSError):  # the child did it first, or has ended already
                os.setpgid(pid, pid)
            os.close(stderr_fd)
            children[pid] = socket.socket(fileno=channel_fd)
            control.sendall(_PID.pack(pid))
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

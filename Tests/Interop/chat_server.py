"""Starts and stops a sockets-chat server for the chat scenarios (chat_rooms.py, chat_load.py,
chat_browser.py). Not a test by itself.

The server is started on port 0 (or a given port, for restarts) and prints one line on stdout,
"sockets-chat: open http://HOST:PORT/ in a browser ..." (https:// with --tls-cert and --tls-key),
which is how we learn its address. Its stderr (log lines) goes to a temporary file, whose tail is
reported when something goes wrong. The child gets SIGTERM if this process dies first
(PR_SET_PDEATHSIG), so a killed test leaves no server behind.
"""

import ctypes
import os
import re
import signal
import subprocess
import tempfile
import time

URL_LINE = re.compile(r"open (https?://[^/\s]+)/")


def _die_with_parent():
    # Linux prctl(PR_SET_PDEATHSIG, SIGTERM): runs in the child between fork and exec.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except OSError:
        pass


class ChatServer:
    def __init__(self, binary, extra_args=(), port=0, host="127.0.0.1"):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.host = host
        self.port = port
        self.proc = None
        self.base = None
        self.log = tempfile.NamedTemporaryFile(prefix="sockets-chat-", suffix=".log", delete=False)

    def start(self, timeout=30.0):
        args = [self.binary, "--host", self.host, "--port", str(self.port)] + self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent, text=True)
        deadline = time.monotonic() + timeout
        # readline blocks, but the server either prints its line or exits (EOF) quickly; the
        # deadline is checked between lines.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sockets-chat exited with {self.proc.wait()} before listening: {self.log_tail()}")
            m = URL_LINE.search(line)
            if m:
                self.base = m.group(1)
                self.port = int(self.base.rsplit(":", 1)[1])
                return self.base
        raise RuntimeError(f"sockets-chat printed no URL within {timeout} s: {self.log_tail()}")

    def stop(self, timeout=10.0):
        """SIGTERM (a graceful shutdown: sockets get 1001), then SIGKILL after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc.stdout.close()
        self.proc = None
        return code

    @property
    def ws_base(self):
        scheme, rest = self.base.split("://", 1)
        return ("wss://" if scheme == "https" else "ws://") + rest

    def log_tail(self, n=4000):
        try:
            with open(self.log.name, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def remove_log(self):
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.remove_log()
        return False

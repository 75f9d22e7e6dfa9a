#!/usr/bin/env python3
"""A throwaway PostgreSQL server for the backplane tests: a cluster made by initdb in a temporary
folder, started by pg_ctl on 127.0.0.1 and a free port, trust authentication for user `sockets`.

As a module: `PgCluster().start()` ... `.restart()` ... `.stop()` (stop also removes the folder).
As a command (for the Swift tests):
  pg_cluster.py start            prints {"dir": ..., "url": "postgres://sockets@127.0.0.1:PORT/postgres"}
  pg_cluster.py restart DIR      stops it abruptly and starts the same cluster on the same port
  pg_cluster.py halt DIR         stops it abruptly (every connection is cut), keeping DIR
  pg_cluster.py resume DIR       starts a halted cluster again on the same port
  pg_cluster.py stop DIR         stops it and removes DIR
PostgreSQL refuses to run as root: as root, the server runs as user `nobody`.

Exit status: 0 done; 2 bad arguments; 6 PostgreSQL is not installed (apt-get install postgresql);
1 anything else (the message says what).
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

MISSING = 6


def pg_bin():
    """The folder of initdb and pg_ctl: $PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    env = os.environ.get("PG_BIN")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for c in reversed(candidates):
        if c and os.path.exists(os.path.join(c, "initdb")) and os.path.exists(os.path.join(c, "pg_ctl")):
            return c
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgMissing(RuntimeError):
    pass


class PgCluster:
    def __init__(self, directory=None, port=None):
        self.bin = pg_bin()
        if self.bin is None:
            raise PgMissing("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
        self.dir = directory
        self.port = port

    @property
    def url(self):
        return f"postgres://sockets@127.0.0.1:{self.port}/postgres"

    def _run(self, *args, check=True):
        cmd = [os.path.join(self.bin, args[0])] + list(args[1:])
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--"] + cmd
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stdout[-2000:]} {self.log_tail()}")
        return r

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return f.read()[-2000:]
        except (OSError, TypeError):
            return ""

    def start(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sockets-pg-")
            os.chmod(self.dir, 0o755)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "nobody")
            self._run("initdb", "-D", os.path.join(self.dir, "data"), "-U", "sockets", "--auth=trust", "-E", "UTF8", "--no-sync")
        if self.port is None:
            self.port = free_port()
        self._run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-l", os.path.join(self.dir, "log"), "-w", "-t", "30",
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off", "start")
        return self.url

    def stop(self, remove=True):
        if self.dir and os.path.exists(os.path.join(self.dir, "data", "postmaster.pid")):
            self._run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "-w", "stop", check=False)
        if remove and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def halt(self):
        """Stops the server abruptly: every connection is cut."""
        self._run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "-w", "stop")

    def restart(self):
        """Stops the server abruptly (every connection is cut) and starts it again on the same port."""
        self._run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "-w", "stop")
        self.start()

    @staticmethod
    def port_of(directory):
        with open(os.path.join(directory, "data", "postmaster.opts")) as f:
            opts = f.read()
        return int(opts.split('"-p" "')[1].split('"')[0])


def main(argv):
    if not argv or argv[0] not in ("start", "stop", "restart", "halt", "resume") or (argv[0] != "start" and len(argv) != 2):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            c = PgCluster()
            try:
                c.start()
            except BaseException:
                c.stop()
                raise
            print(json.dumps({"dir": c.dir, "url": c.url, "port": c.port}), flush=True)
        elif argv[0] == "restart":
            PgCluster(argv[1], PgCluster.port_of(argv[1])).restart()
        elif argv[0] == "halt":
            PgCluster(argv[1], PgCluster.port_of(argv[1])).halt()
        elif argv[0] == "resume":
            PgCluster(argv[1], PgCluster.port_of(argv[1])).start()
        else:
            PgCluster(argv[1]).stop()
    except PgMissing as e:
        print(f"pg_cluster.py: {e}", file=sys.stderr)
        return MISSING
    except Exception as e:  # noqa: BLE001 - reported to the caller
        print(f"pg_cluster.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main(sys.argv[1:]))

"""A throwaway Postfix instance on loopback, for side-by-side figures.

Everything lives under one temporary directory: its own config directory (main.cf and
master.cf written here), queue and data directories, and log file. It listens on one
loopback port only (inet_interfaces = 127.0.0.1, smtpd bound to 127.0.0.1:PORT), relays
everything to a relayhost on loopback (an smtp-sink), and is stopped and deleted at the end.
Its master.cf is the Debian package's stock one (chroot and process limits as shipped)
with only the smtpd listener moved to the loopback port. It needs root (Postfix's master
starts as root and drops to the `postfix` user) and the Debian package `postfix`; the
system-wide instance is never started or touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

STOCK_MASTER_CF = Path("/etc/postfix/master.cf")
"""The master.cf the Debian package installs: used as it is, but for the listener."""
CHROOT_FILES = ("localtime", "hosts", "host.conf", "nsswitch.conf", "resolv.conf", "services")
"""What Debian's start script copies into the chroot of its services (the queue directory)."""


def master_cf(port: int, stock: Path = STOCK_MASTER_CF) -> str:
    """The package's stock master.cf with its smtpd listener moved to 127.0.0.1:`port`
    (chroot and process limits as shipped)."""
    text = stock.read_text()
    listener = re.compile(r"(?m)^smtp(\s+inet\s)")
    if len(listener.findall(text)) != 1:
        raise RuntimeError(f"{stock} has no single `smtp inet` listener line")
    return listener.sub(lambda m: f"127.0.0.1:{port}{m.group(1)}", text)


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
"""


def available() -> str | None:
    """None when a throwaway Postfix can run here, else why not."""
    if not os.path.exists(POSTFIX) or not STOCK_MASTER_CF.exists():
        return "postfix is not installed (apt-get install postfix: see bench/README.md)"
    if os.geteuid() != 0:
        return "a throwaway Postfix instance needs root"
    return None


class Postfix:
    """One Postfix instance under `root`, listening on 127.0.0.1:`port`."""

    def __init__(self, root: Path, port: int, relay_port: int) -> None:
        self.root = root
        self.port = port
        self.config_dir = root / "etc"
        self.relay_port = relay_port
        self.master_pid: int | None = None

    def _postfix(self, *args: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip()
            log = self.root / "maillog"
            if log.exists():
                why += "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise RuntimeError(f"postfix {' '.join(args)} failed: {why.strip() or 'no message'}")

    def start(self) -> None:
        """Write the configuration, create the queue, start the master."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for folder in (self.root, *self.root.parents):  # the postfix user walks into it
            if not os.stat(folder).st_mode & 0o001:
                raise RuntimeError(f"{folder} must be searchable by all (the postfix user)")
        self.config_dir.mkdir()
        for name in ("spool", "data"):
            (self.root / name).mkdir()
        shutil.chown(self.root / "data", "postfix")
        (self.config_dir / "master.cf").write_text(master_cf(self.port))
        chroot_etc = self.root / "spool" / "etc"
        chroot_etc.mkdir(parents=True)
        for name in CHROOT_FILES:
            if os.path.exists(f"/etc/{name}"):
                shutil.copy(f"/etc/{name}", chroot_etc / name)
        (self.config_dir / "main.cf").write_text(
            MAIN_CF.format(root=self.root, relay_port=self.relay_port)
        )
        self._postfix("set-permissions")
        self._postfix("start")
        pid_file = self.root / "spool" / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not start: see {self.root / 'maillog'}")
            time.sleep(0.05)
        self.master_pid = int(pid_file.read_text().split()[0])

    def queued(self) -> int:
        """Messages still in the queue (waiting to be relayed)."""
        count = 0
        for queue in QUEUES:
            for _dirpath, _dirnames, files in os.walk(self.root / "spool" / queue):
                count += len(files)
        return count

    def wait_empty(self, timeout: float = 120.0) -> None:
        """Wait until everything queued has been relayed."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix queue did not drain in {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the master and its processes, delete everything."""
        try:
            if self.master_pid is not None:
                self._postfix("stop")
                deadline = time.monotonic() + 10
                while _alive(self.master_pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

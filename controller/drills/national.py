"""A replicated national store, started from empty folders, for the national drills.

Three sites, as in production (docs/national.md): Beijing (primary), Gui'an (backup) and a witness
hub. etcd runs one member per site (a quorum of three, so the loss of any one site leaves two);
Patroni runs PostgreSQL 15 at Beijing and Gui'an with synchronous replication between them, so a
commit is acknowledged only once it is on both sites. Patroni 4.1.5 comes from PyPI in a
virtualenv built with /usr/bin/python3 (``tools/get-patroni.sh``) and runs as the ``postgres``
user; PostgreSQL and etcd are Debian's (``postgresql``, ``etcd-server``).

Every process is started in its own session with its output in a log file and stopped by its pid.
``kill_site`` does what losing a data centre does: it collects every process of the site (etcd,
Patroni, the postmaster read from ``postmaster.pid`` and every one of its children, anything
Patroni spawned), SIGSTOPs them all and then SIGKILLs them all, so none of them reacts to the
others' death. ``restart_site`` starts the site's etcd and Patroni again on the same folders: the
old primary rejoins as the synchronous standby (pg_rewind, or a new base backup when the rewind
cannot be done).

With a ``NetLab`` each site runs in its own network namespace (``ip netns exec``) on the lab's
bridge, and ``NetLab.partition(site)`` cuts it off for real (packets dropped); without one,
everything listens on 127.0.0.1 with free ports.

Why one module of this length: the three sites' store (etcd, Patroni, PostgreSQL, their folders,
ports and processes) is one fixture, started and torn down together.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.drills.netns import NetLab
from controller.drills.procs import Proc
from controller.store import patroni

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ETCD = "/usr/bin/etcd"
ETCD_START_S = 60.0  # a new etcd quorum of the three sites: the harness waits this long for it
PATRONI_VERSION = "4.1.5"
SITES = patroni.SITES
DB_SITES = patroni.DATABASE_SITES
SCOPE = patroni.SCOPE
DATABASE = patroni.DATABASE

Say = Callable[[str], None]


def default_patroni() -> Path:
    """Where ``make tools`` puts Patroni's virtualenv (``YIWANG_PATRONI`` overrides it): under
    /opt, not in the checkout, because Patroni runs as the postgres user, who cannot reach a
    checkout inside a private folder (``mktemp -d`` makes one: mode 0700)."""
    env = os.environ.get("YIWANG_PATRONI")
    return Path(env) if env else Path(f"/opt/yiwang/patroni-{PATRONI_VERSION}/bin/patroni")


def unavailable(patroni: Path | None = None) -> str | None:
    """Why the national store cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "the national store runs PostgreSQL as the postgres user: it needs root"
    if not PG_BIN.joinpath("postgres").exists():
        return "PostgreSQL 15 is not installed (make system installs it as root)"
    if not Path(ETCD).exists():
        return "etcd is not installed (apt-get install etcd-server; make system does it as root)"
    p = patroni or default_patroni()
    if not p.exists():
        return f"Patroni {PATRONI_VERSION} is not installed at {p} (make tools: tools/get-patroni.sh)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    return None


def _free_port() -> int:
    from controller.live import free_port

    return free_port()


@dataclass
class Site:
    name: str
    ip: str
    etcd_client: int
    etcd_peer: int
    pg: int = 0
    rest: int = 0

    @property
    def etcd_url(self) -> str:
        return f"http://{self.ip}:{self.etcd_client}"


def _children() -> dict[int, list[int]]:
    """ppid -> pids, read from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command may hold spaces and parentheses: the fields after the last ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            out.setdefault(int(fields[1]), []).append(int(entry))
    return out


def _tree(roots: list[int], kids: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = [p for p in roots if p > 0]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    return seen


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class NationalStore:
    """etcd x3 and Patroni x2 in ``root`` (a new temporary folder unless given)."""

    def __init__(
        self,
        root: Path | None = None,
        lab: NetLab | None = None,
        patroni: Path | None = None,
        say: Say | None = None,
        max_connections: int = 200,
        bucket: Path | None = None,
        restore_script: Path | None = None,
    ) -> None:
        """``bucket``: the WAL and base backups go to this folder through the WAL-G stand-in
        (``walg.py``, as ``wal-g``), as the deployed store's go to its site's bucket;
        ``restore_script``: the cluster is made from that bucket's newest backup by this script
        (``infra/yiwang_infra/restore_backup.py``) instead of ``initdb``."""
        self.root = root or Path(tempfile.mkdtemp(prefix="yiwang-national-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.lab = lab
        self.patroni_bin = patroni or default_patroni()
        self.say: Say = say or (lambda _m: None)
        self.max_connections = max_connections
        self.bucket = bucket
        self.restore_script = restore_script
        if restore_script is not None and bucket is None:
            raise ValueError("a restore reads a bucket: give one")
        self.sites: dict[str, Site] = {}
        for name in SITES:
            if lab is not None:
                self.sites[name] = Site(name, lab.addr[name], 2379, 2380, 5432, 8008)
            else:
                self.sites[name] = Site(name, "127.0.0.1", _free_port(), _free_port())
                if name in DB_SITES:
                    self.sites[name].pg, self.sites[name].rest = _free_port(), _free_port()
        self.etcd: dict[str, Proc] = {}
        self.patroni: dict[str, Proc] = {}
        self.starts: dict[str, int] = {}
        self.killed: dict[str, list[int]] = {}  # site -> pids SIGKILLed
        self.lost_at: dict[str, float] = {}
        self.relays: dict[
            tuple[str, int], Proc
        ] = {}  # lab: the runner's way into each site  # site -> wall time every process of it was stopped

    # ---- addresses --------------------------------------------------------------------------
    def prefix(self, site: str) -> list[str]:
        return self.lab.exec_prefix(site) if self.lab is not None else []

    def sqlalchemy_url(self, sites: tuple[str, ...] = DB_SITES, database: str = DATABASE) -> str:
        """The controllers' URL: libpq multi-host, read-write sessions only (as deployed)."""
        return patroni.multi_host_url(
            [f"{self.sites[s].ip}:{self.sites[s].pg}" for s in sites], "postgres", database=database
        )

    def site_dir(self, site: str) -> Path:
        return self.root / site

    # ---- configuration ----------------------------------------------------------------------
    def _etcd_argv(self, site: str) -> list[str]:
        s = self.sites[site]
        cluster = ",".join(f"{n}=http://{x.ip}:{x.etcd_peer}" for n, x in self.sites.items())
        data = self.site_dir(site) / "etcd"
        return [
            ETCD,
            "--name",
            site,
            "--data-dir",
            str(data),
            "--listen-client-urls",
            s.etcd_url,
            "--advertise-client-urls",
            s.etcd_url,
            "--listen-peer-urls",
            f"http://{s.ip}:{s.etcd_peer}",
            "--initial-advertise-peer-urls",
            f"http://{s.ip}:{s.etcd_peer}",
            "--initial-cluster",
            cluster,
            "--initial-cluster-token",
            f"{SCOPE}-{self.root.name}",
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            "--log-level",
            "warn",
        ]

    def patroni_config(self, site: str) -> dict[str, Any]:
        """The member's patroni.yml: the deployed settings (``controller.store.patroni``) with
        this test bed's addresses, folders and trust on its own networks."""
        s = self.sites[site]
        d = self.site_dir(site) / "pg"
        nets = ["127.0.0.1/32"] + (["10.213.0.0/16"] if self.lab is not None else [])
        hba = ["local all all trust"]
        for net in nets:  # a drill's test bed on loopback or in its own namespaces only
            hba += [f"host all all {net} trust", f"host replication all {net} trust"]
        config = patroni.member_config(
            site=site,
            rest_listen=f"{s.ip}:{s.rest}",
            rest_connect=f"{s.ip}:{s.rest}",
            pg_listen=f"{s.ip}:{s.pg}",
            pg_connect=f"{s.ip}:{s.pg}",
            etcd_hosts=[f"{x.ip}:{x.etcd_client}" for x in self.sites.values()],
            data_dir=str(d / "data"),
            bin_dir=str(PG_BIN),
            pg_hba=hba,
            authentication={
                "superuser": {"username": "postgres", "password": "drill-only"},
                "replication": {"username": "replicator", "password": "drill-only"},
                "rewind": {"username": "postgres", "password": "drill-only"},
            },
            parameters={
                "unix_socket_directories": str(d),
                "logging_collector": "on",
                "log_directory": str(d / "pg-log"),
                "log_min_messages": "warning",
                "shared_buffers": "64MB",
            },
            max_connections=self.max_connections,
            archive_command=patroni.ARCHIVE_COMMAND if self.bucket is not None else None,
            log_dir=str(d / "patroni-log"),
            post_bootstrap=str(self.site_dir(site) / "post_bootstrap.sh"),
            restore=patroni.restore_bootstrap(f"/usr/bin/python3 {self.tools / 'restore-from-backup.py'}")
            if self.restore_script is not None
            else None,
        )
        config["postgresql"]["pgpass"] = str(d / "pgpass")  # two members as one user: one each
        return config

    @property
    def tools(self) -> Path:
        """The WAL-G stand-in (``bin/wal-g``) and the restore script, where ``postgres`` reads them."""
        return self.root / "tools"

    def tool_env(self) -> dict[str, str]:
        """PATH with ``wal-g`` and PostgreSQL's programs, and the bucket WAL-G writes to."""
        env = {"PATH": f"{self.tools / 'bin'}:{PG_BIN}:/usr/bin:/bin"}
        if self.bucket is not None:
            env["WALG_FILE_PREFIX"] = str(self.bucket)
        return env

    def _write_tools(self) -> None:
        if self.bucket is None:
            return
        (self.tools / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).with_name("walg.py"), self.tools / "walg.py")
        shim = self.tools / "bin" / "wal-g"
        shim.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {self.tools / "walg.py"} "$@"\n')
        if self.restore_script is not None:
            shutil.copy(self.restore_script, self.tools / "restore-from-backup.py")
        for p in (self.tools, self.tools / "bin", shim, *self.tools.glob("*.py")):
            os.chmod(p, 0o755)
        self.bucket.mkdir(parents=True, exist_ok=True)
        for p in (self.bucket, *self.bucket.rglob("*")):
            shutil.chown(p, "postgres", "postgres")  # archive_command runs as postgres

    def _write_site(self, site: str) -> None:
        d = self.site_dir(site)
        (d / "etcd").mkdir(parents=True, exist_ok=True)
        os.chmod(d / "etcd", 0o700)
        if site not in DB_SITES:
            return
        pg = d / "pg"
        for sub in ("", "patroni-log", "pg-log"):
            (pg / sub).mkdir(parents=True, exist_ok=True)
            shutil.chown(pg / sub, "postgres", "postgres")
        os.chmod(pg, 0o700)
        script = d / "post_bootstrap.sh"
        script.write_text(
            "#!/bin/sh\n# Patroni calls this once, on the first primary, with a connection string.\n"
            f'exec psql "$1" -v ON_ERROR_STOP=1 -c "CREATE DATABASE {DATABASE}"\n'
        )
        script.chmod(0o755)
        (d / "patroni.yml").write_text(yaml.safe_dump(self.patroni_config(site), sort_keys=False))
        os.chmod(d / "patroni.yml", 0o644)
        for p in (self.root, d):
            os.chmod(p, 0o755)  # postgres reaches its own folders through these

    # ---- processes --------------------------------------------------------------------------
    def _start_etcd(self, site: str) -> None:
        n = self.starts[f"etcd-{site}"] = self.starts.get(f"etcd-{site}", 0) + 1
        d = self.site_dir(site)
        self.etcd[site] = Proc(
            f"etcd-{site}-{n}",
            self.prefix(site) + self._etcd_argv(site),
            {"PATH": "/usr/bin:/bin", "ETCD_UNSUPPORTED_ARCH": os.uname().machine},
            self.root / "logs" / f"etcd-{site}-{n}.log",
            d,
        )

    def _start_patroni(self, site: str) -> None:
        n = self.starts[f"patroni-{site}"] = self.starts.get(f"patroni-{site}", 0) + 1
        d = self.site_dir(site)
        argv = [
            *self.prefix(site),
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            str(self.patroni_bin),
            str(d / "patroni.yml"),
        ]
        env = {
            **self.tool_env(),
            "HOME": str(d / "pg"),
            "LANG": "C.UTF-8",
            "PGPASSFILE": str(d / "pg" / "pgpass"),
        }
        log = self.root / "logs" / f"patroni-{site}-{n}.log"
        self.patroni[site] = Proc(f"patroni-{site}-{n}", argv, env, log, d / "pg")

    def start(self, timeout_s: float = 90.0) -> float:
        """etcd on the three sites, then Patroni at Beijing (it bootstraps the cluster and
        becomes the primary), then at Gui'an (a base backup, then the synchronous standby).
        Returns the seconds it took to a healthy primary + synchronous standby."""
        t0 = time.monotonic()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._write_tools()
        for site in SITES:
            self._write_site(site)
        for site in SITES:
            self._start_etcd(site)
        # a quorum of three new members: seconds when quiet; a CI run at full load once took
        # over 30 s (each member fsyncs its WAL on a disk the suite's databases share)
        self.wait_etcd(SITES, ETCD_START_S)
        self._start_patroni("beijing")
        deadline = t0 + timeout_s
        if not self.wait_role("beijing", "primary", deadline - time.monotonic()):
            code = self.patroni["beijing"].popen.poll()
            how = (
                f"its Patroni exited with {code} after {time.monotonic() - t0:.1f}s"
                if code is not None
                else f"not in {timeout_s:g}s"
            )
            raise RuntimeError(f"Beijing did not become the primary: {how} ({self.logs_hint()})")
        self._start_patroni("guian")
        if not self.wait_role("guian", "sync", deadline - time.monotonic()):
            raise RuntimeError(
                f"Gui'an did not become the synchronous standby in {timeout_s:g}s ({self.logs_hint()})"
            )
        took = time.monotonic() - t0
        self.say(f"  national store: primary beijing, synchronous standby guian in {took:.1f}s")
        return took

    def logs_hint(self, etcd: bool = False) -> str:
        """Where the logs are, and the tail of each Patroni log (``etcd``: of each etcd log): the
        folder is removed with the drill, so a failure in CI must carry what it needs to be
        diagnosed."""
        logs = self.root / "logs"
        tails = [
            f"--- {f.name} (last 1,500 characters)\n{f.read_text(errors='replace')[-1500:]}"
            for f in sorted(logs.glob("etcd-*.log" if etcd else "patroni-*.log"))
        ]
        return "\n".join([f"logs in {logs}", *tails])

    # ---- health -----------------------------------------------------------------------------
    def rest(self, site: str, path: str, timeout_s: float = 1.0) -> tuple[int, dict[str, Any]]:
        """GET Patroni's REST API of ``site`` (status, body); (0, {}) when it does not answer.
        In a lab, the call runs inside the site's namespace."""
        s = self.sites[site]
        if self.lab is None:
            try:
                with httpx.Client() as c:
                    r = c.get(f"http://{s.ip}:{s.rest}{path}", timeout=timeout_s)
                return r.status_code, (r.json() if r.content else {})
            except (httpx.HTTPError, ValueError):
                return 0, {}
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=self._relay(site, s.rest))) as c:
                r = c.get(f"http://{site}{path}", timeout=timeout_s)
            return r.status_code, (r.json() if r.content else {})
        except (httpx.HTTPError, ValueError):
            return 0, {}

    def _relay(self, site: str, port: int) -> str:
        """A unix socket that reaches ``site``'s ``port`` from inside its namespace (started on
        first use; it stays up when the site is cut off or lost: the runner's observer there)."""
        sock = self.root / "sock" / f"{site}-{port}.sock"
        if (site, port) not in self.relays:
            sock.parent.mkdir(parents=True, exist_ok=True)
            from controller.drills.procs import RUNNER_CODE, child_env

            argv = [*self.prefix(site), sys.executable, "-m", "controller.drills.relay"]
            argv += [str(sock), self.sites[site].ip, str(port)]
            self.relays[(site, port)] = Proc(
                f"relay-{site}-{port}",
                argv,
                child_env(code=RUNNER_CODE),
                self.root / "logs" / f"relay-{site}-{port}.log",
                self.root,
            )
            deadline = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return str(sock)

    def role(self, site: str) -> str:
        """primary | sync (synchronous standby) | replica | down."""
        if site not in DB_SITES:
            return "down"
        if self.rest(site, "/primary")[0] == 200:
            return "primary"
        if self.rest(site, "/sync")[0] == 200:
            return "sync"
        if self.rest(site, "/replica")[0] == 200:
            return "replica"
        return "down"

    def wait_role(self, site: str, role: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout_s)
        path = {"primary": "/primary", "sync": "/sync", "replica": "/replica"}[role]
        while time.monotonic() < deadline:
            if site in self.patroni and not self.patroni[site].alive:
                return False
            if self.rest(site, path)[0] == 200:
                return True
            time.sleep(0.25)
        return False

    def wait_healthy(self, primary: str, standby: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return self.wait_role(primary, "primary", timeout_s) and self.wait_role(
            standby, "sync", deadline - time.monotonic()
        )

    def etcd_healthy(self, site: str) -> bool:
        """etcd's own /health of the site's member (true only while it is part of a quorum)."""
        s = self.sites[site]
        try:
            if self.lab is None:
                with httpx.Client() as c:
                    r = c.get(f"{s.etcd_url}/health", timeout=2.0)
            else:
                with httpx.Client(transport=httpx.HTTPTransport(uds=self._relay(site, s.etcd_client))) as c:
                    r = c.get(f"http://{site}/health", timeout=2.0)
            return str(r.json().get("health")).lower() == "true"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def wait_etcd(self, sites: tuple[str, ...] | list[str], timeout_s: float) -> None:
        """Every site's etcd member healthy (in a quorum) within ``timeout_s``; a member whose
        process ended fails at once. Either failure carries the etcd logs' tails."""
        deadline = time.monotonic() + timeout_s
        for site in sites:
            while not self.etcd_healthy(site):
                proc = self.etcd.get(site)
                code = proc.popen.poll() if proc is not None else None
                if code is not None:
                    raise RuntimeError(f"etcd of {site} exited with {code} ({self.logs_hint(etcd=True)})")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"etcd of {site} is not healthy after {timeout_s:g}s ({self.logs_hint(etcd=True)})"
                    )
                time.sleep(0.2)

    def status(self) -> dict[str, Any]:
        """Each database site's role, timeline and lag as Patroni says (for the reports)."""
        out: dict[str, Any] = {}
        for site in DB_SITES:
            code, body = self.rest(site, "/patroni")
            out[site] = {
                "role": self.role(site) if code else "down",
                "timeline": body.get("timeline"),
                "state": body.get("state"),
                "replication": [
                    {"name": r.get("application_name"), "sync": r.get("sync_state"), "state": r.get("state")}
                    for r in body.get("replication", [])
                ],
            }
        return out

    # ---- SQL on one site's own node (not through the multi-host URL) ----------------------
    def site_sql(self, site: str, sql: str, timeout_s: float = 10.0) -> list[str] | None:
        """Run ``sql`` on ``site``'s own PostgreSQL (as postgres, in its namespace); its rows as
        text lines, or None when the node does not answer."""
        s = self.sites[site]
        argv = [
            *self.prefix(site),
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            str(PG_BIN / "psql"),
            "-h",
            s.ip,
            "-p",
            str(s.pg),
            "-U",
            "postgres",
            "-d",
            DATABASE,
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
        env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "3", "HOME": "/tmp"}
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        return [line for line in r.stdout.splitlines() if line]

    # ---- faults -----------------------------------------------------------------------------
    def site_pids(self, site: str) -> set[int]:
        """Every process of a site: etcd, Patroni and what it spawned, the postmaster (from
        postmaster.pid; Patroni detaches it) and all its children."""
        kids = _children()
        roots: list[int] = []
        for procs in (self.etcd, self.patroni):
            p = procs.get(site)
            if p is not None and p.alive:
                roots.append(p.pid)
        pidfile = self.site_dir(site) / "pg" / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            roots.append(int(pidfile.read_text().splitlines()[0]))
        return {p for p in _tree(roots, kids) if _alive(p)}

    def kill_site(self, site: str, also: Callable[[], set[int]] | None = None) -> list[int]:
        """SIGSTOP every process of the site, then SIGKILL them all (a data centre lost at
        once: no process sees another die). ``also``: more pids of the site (its controller,
        agents and their jobs), killed in the same sweep. Returns the pids killed."""
        more = also or set
        pids = self.site_pids(site) | more()
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
        pids |= self.site_pids(site) | more()  # anything spawned between the scan and the stop
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
        self.lost_at[site] = time.time()  # from here the site does nothing: it is lost
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        for procs in (self.etcd, self.patroni):
            proc = procs.get(site)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.killed[site] = sorted(pids)
        return sorted(pids)

    def restart_site(self, site: str) -> None:
        """Start the site's etcd member and Patroni again on their folders."""
        if site not in self.etcd or not self.etcd[site].alive:
            self._start_etcd(site)
        if site in DB_SITES and (site not in self.patroni or not self.patroni[site].alive):
            self._start_patroni(site)

    # ---- the end ----------------------------------------------------------------------------
    def stop(self) -> None:
        """The end of a drill: every process of every site SIGKILLed (the folders are thrown
        away, so nothing is gained by a clean shutdown), then the runner's relays."""
        for site in SITES:
            self.kill_site(site)
        for p in self.relays.values():
            p.stop(2.0)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def keep_logs(self, dest: Path) -> None:
        """Copy the processes' logs (etcd, Patroni, PostgreSQL) to ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            for f in (self.root / "logs").iterdir():
                shutil.copy(f, dest / f.name)
        for site in DB_SITES:
            for sub in ("pg-log", "patroni-log"):
                src = self.site_dir(site) / "pg" / sub
                if src.exists():
                    with contextlib.suppress(OSError, shutil.Error):
                        shutil.copytree(src, dest / f"{site}-{sub}", dirs_exist_ok=True)

"""The national store's Patroni settings, in one place: the drills' test bed
(``controller/drills/national.py``) and the national Pulumi stacks (``infra/``) both build their
Patroni configuration from here, so what the drills measure is what is deployed.

PostgreSQL 15 replicated synchronously between the two database sites (Beijing and Gui'an), etcd
on those two and a witness site for quorum. See docs/national.md for why each setting.
"""

from __future__ import annotations

from typing import Any

SCOPE = "yiwang-national"
NAMESPACE = "/yiwang/"
DATABASE = "yiwang"
DATABASE_SITES = ("beijing", "guian")
SITES = ("beijing", "guian", "witness")

# Patroni 4 raises any ttl below 20 s to 20 s; loop_wait + 2 x retry_timeout <= ttl.
TTL_S = 20
LOOP_WAIT_S = 2
RETRY_TIMEOUT_S = 4


def dcs_settings(max_connections: int = 200) -> dict[str, Any]:
    """``bootstrap.dcs``: written to etcd by the first member, shared by both."""
    return {
        "ttl": TTL_S,
        "loop_wait": LOOP_WAIT_S,
        "retry_timeout": RETRY_TIMEOUT_S,
        "maximum_lag_on_failover": 1048576,
        # a commit returns once the other site has flushed it; not strict: with two database
        # sites, strict mode would stop every write while one of them is away
        "synchronous_mode": True,
        "synchronous_mode_strict": False,
        "synchronous_node_count": 1,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            # a lost or cut-off primary rejoins by itself: rewound, or cloned again
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "parameters": {
                "wal_level": "replica",
                "wal_log_hints": "on",
                "hot_standby": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "max_connections": max_connections,
                "synchronous_commit": "on",
                "fsync": "on",
                "full_page_writes": "on",
                "wal_keep_size": "256MB",
            },
        },
    }


# WAL-G ships the WAL to the site's bucket (``archive_command``) and fetches it back in a
# restore (``restore_command``); a base backup comes from ``infra/yiwang_infra/base_backup.py``
ARCHIVE_COMMAND = "wal-g wal-push %p"
RESTORE_COMMAND = "wal-g wal-fetch %f %p"
RESTORE_METHOD = "restore_from_backup"


def restore_bootstrap(command: str, restore_command: str = RESTORE_COMMAND) -> dict[str, Any]:
    """``bootstrap.<RESTORE_METHOD>``: a new cluster made from the newest base backup in the
    site's bucket (``command``, called by Patroni with ``--scope`` and ``--datadir``), then
    recovered through every archived WAL segment (``restore_command``) to the end of the archive
    on the latest timeline, and promoted. Patroni runs it only where no cluster is initialised
    in etcd; a second member then clones the restored primary as usual."""
    return {
        "command": command,
        "recovery_conf": {
            "restore_command": restore_command,
            "recovery_target_timeline": "latest",
            "recovery_target_action": "promote",
        },
    }


def member_config(
    *,
    site: str,
    rest_listen: str,
    rest_connect: str,
    pg_listen: str,
    pg_connect: str,
    etcd_hosts: list[str],
    data_dir: str,
    bin_dir: str,
    pg_hba: list[str],
    authentication: dict[str, dict[str, str]],
    parameters: dict[str, Any] | None = None,
    max_connections: int = 200,
    archive_command: str | None = None,
    log_dir: str | None = None,
    post_bootstrap: str | None = None,
    restore: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One member's ``patroni.yml``. ``restore`` (``restore_bootstrap``): a cluster made from
    the backups instead of ``initdb``; its roles and database come with it, so no
    ``post_bootstrap`` runs then."""
    pg_parameters = dict(parameters or {})
    if archive_command:
        pg_parameters |= {"archive_mode": "on", "archive_command": archive_command, "archive_timeout": "60s"}
    bootstrap: dict[str, Any] = {
        "dcs": dcs_settings(max_connections),
        "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
    }
    if restore is not None:
        bootstrap["method"] = RESTORE_METHOD
        bootstrap[RESTORE_METHOD] = restore
    elif post_bootstrap:
        bootstrap["post_bootstrap"] = post_bootstrap
    config: dict[str, Any] = {
        "scope": SCOPE,
        "namespace": NAMESPACE,
        "name": site,
        "restapi": {"listen": rest_listen, "connect_address": rest_connect},
        "etcd3": {"hosts": etcd_hosts},
        "bootstrap": bootstrap,
        "postgresql": {
            "listen": pg_listen,
            "connect_address": pg_connect,
            "data_dir": data_dir,
            "bin_dir": bin_dir,
            # a base backup asks for an immediate checkpoint, not a spread one (minutes)
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": authentication,
            "pg_hba": pg_hba,
            "parameters": pg_parameters,
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
    }
    if log_dir:
        config["log"] = {"level": "INFO", "dir": log_dir, "file_num": 2}
    return config


def multi_host_url(
    hosts: list[str], user: str, password: str = "", database: str = DATABASE, **query: str
) -> str:
    """The controllers' URL: libpq multi-host, read-write sessions only, a short connect timeout
    so a dead host is skipped quickly (``controller.store.engine.normalise_url`` reads it)."""
    auth = f"{user}:{password}@" if password else f"{user}@"
    params = {"target_session_attrs": "read-write", "connect_timeout": "2", **query}
    return f"postgresql+psycopg://{auth}{','.join(hosts)}/{database}?" + "&".join(
        f"{k}={v}" for k, v in params.items()
    )

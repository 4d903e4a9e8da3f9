#!/usr/bin/env bash
# Patroni 4.1.5 (PostgreSQL HA: leader election in etcd, synchronous replication, pg_rewind) in a
# virtualenv of its own under $1 (make tools: /opt/yiwang/patroni-4.1.5), for the national-store drills.
# Built with /usr/bin/python3 on purpose: Patroni runs as the postgres user, which cannot read a
# Python installed under root's home (it then hangs at "bootstrap in progress" without an error).
set -euo pipefail
version=4.1.5
dest=${1:-/opt/yiwang/patroni-$version}
if [ -x "$dest/bin/patroni" ] && "$dest/bin/patroni" --version 2>/dev/null | grep -q "$version"; then
  exit 0
fi
/usr/bin/python3 -m venv "$dest"
"$dest/bin/pip" install -q --disable-pip-version-check --no-warn-script-location "patroni[etcd3,psycopg3]==$version"
chmod -R a+rX "$dest"
chmod a+rx "$(dirname "$dest")"  # the postgres user must reach it
"$dest/bin/patroni" --version

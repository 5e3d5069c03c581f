#!/usr/bin/env bash
# A PostgreSQL server for Prefect's database (Debian's `postgresql` package), on loopback.
#
#   deploy/postgres.sh start DATA_DIR [PORT]   create the cluster once, start it, print the URL
#   deploy/postgres.sh url   DATA_DIR          print the URL of a cluster made here
#   deploy/postgres.sh stop  DATA_DIR          stop it (the data stays)
#
# Then: export PREFECT_API_DATABASE_CONNECTION_URL=$(deploy/postgres.sh url DATA_DIR)
# before `prefect server start`. The cluster listens on 127.0.0.1 only, password
# authentication (scram-sha-256) for its one role `prefect`; the password is generated
# and kept in DATA_DIR/password (mode 600). PostgreSQL refuses to run as root: as root
# the server runs as the `postgres` user and DATA_DIR is given to it.
set -euo pipefail

usage() { echo "usage: $0 start DATA_DIR [PORT] | url DATA_DIR | stop DATA_DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$(realpath -m "$2") port=${3:-5432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "postgres.sh: PostgreSQL is not installed; install it with: apt-get install postgresql" >&2; exit 1; }

as_owner() {  # run a server binary as the cluster's owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  [ -f "$dir/password" ] || { echo "postgres.sh: no cluster made by this script in $dir; run: $0 start $dir" >&2; exit 1; }
  echo "postgresql+asyncpg://prefect:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/prefect"
}

case $cmd in
  start)
    if [ ! -f "$dir/cluster/PG_VERSION" ]; then
      mkdir -p "$dir/cluster"
      chmod 700 "$dir"
      (umask 077; python3 -c 'import secrets; print(secrets.token_hex(16))' > "$dir/password")
      echo "$port" > "$dir/port"
      if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$dir"
        runuser -u postgres -- test -x "$dir" || { echo "postgres.sh: the postgres user cannot enter $dir;" \
          "choose a folder whose parents everyone may enter (chmod o+x), e.g. under /var/lib" >&2; exit 1; }
      fi
      as_owner "$bindir/initdb" -D "$dir/cluster" -U prefect --pwfile="$dir/password" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { echo "postgres.sh: initdb failed; see $dir/initdb.log" >&2; exit 1; }
    fi
    port=$(cat "$dir/port")
    as_owner "$bindir/pg_ctl" -D "$dir/cluster" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >/dev/null \
      || { echo "postgres.sh: the server did not start; see $dir/server.log" >&2; exit 1; }
    if ! PGPASSWORD=$(cat "$dir/password") "$bindir/psql" -h 127.0.0.1 -p "$port" -U prefect -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'prefect'" | grep -q 1; then
      PGPASSWORD=$(cat "$dir/password") "$bindir/createdb" -h 127.0.0.1 -p "$port" -U prefect prefect
    fi
    url
    ;;
  url) url ;;
  stop) as_owner "$bindir/pg_ctl" -D "$dir/cluster" -m fast -w stop >/dev/null ;;
  *) usage ;;
esac

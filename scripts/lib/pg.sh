#!/usr/bin/env bash
# scripts/lib/pg.sh: a private Postgres on a Unix socket (no TCP listener), for scripts/run and
# the tests. Postgres refuses to run as root, so as root it runs as the `postgres` user, in a
# directory that user owns.
#
#   pg.sh start DIR [--fast]   initdb DIR/data if needed, start, print the socket directory
#   pg.sh stop DIR
#   pg.sh url DIR DBNAME       print the libpq URL of database DBNAME
#   pg.sh createdb DIR DBNAME
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

# The cluster must live where the postgres user can reach it. A checkout under a root-only
# directory (mktemp -d makes them 0700) is not such a place: then the cluster goes under /tmp
# and DIR holds a symlink to it.
# The test must use the absolute path: a relative one is resolved from our working directory,
# which the postgres user never has to traverse to, so it passes where postgres itself fails.
resolve_dir() {
  local dir abs
  dir=$1
  mkdir -p "$dir"
  abs=$(cd "$dir" && pwd -P)
  if [ ${#as_pg[@]} -gt 0 ] && ! "${as_pg[@]}" test -x "$abs" 2>/dev/null; then
    local alt
    alt="/tmp/tollgate-pg-$(printf '%s' "$abs" | sha256sum | cut -c1-12)"
    mkdir -p "$alt"
    chown postgres: "$alt"
    chmod 700 "$alt"
    # an empty directory left by an earlier run that took the other branch
    [ -d "$abs/cluster" ] && [ ! -L "$abs/cluster" ] && rmdir "$abs/cluster" 2>/dev/null || true
    [ -L "$abs/cluster" ] || ln -sfn "$alt" "$abs/cluster"
    printf '%s\n' "$alt"
    return
  fi
  mkdir -p "$dir/cluster"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$dir/cluster"
  printf '%s\n' "$(cd "$dir/cluster" && pwd)"
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|url|createdb DIR [...]" >&2; exit 2; }

case $cmd in
start)
  base=$(resolve_dir "$dir")
  cd / # the postgres user may not enter our working directory (pg_ctl would complain)
  data=$base/data
  sock=$base/run
  "${as_pg[@]}" mkdir -p "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    "${as_pg[@]}" "$PGBIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; exit 1; }
  fi
  opts="-c listen_addresses='' -c unix_socket_directories='$sock' -c max_connections=200"
  if [ "${3:-}" = "--fast" ]; then
    # throwaway test clusters: durability is not what they test
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if ! "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$data" -l "$base/postgres.log" -w -t 60 -o "$opts" start \
      >/dev/null || { cat "$base/postgres.log" >&2; exit 1; }
  fi
  printf '%s\n' "$sock"
  ;;
stop)
  base=$(resolve_dir "$dir")
  cd /
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
  ;;
url)
  base=$(resolve_dir "$dir")
  printf 'postgresql:///%s?host=%s&user=postgres\n' "$3" "$base/run"
  ;;
createdb)
  base=$(resolve_dir "$dir")
  psql -h "$base/run" -U postgres -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$3\"" >/dev/null
  ;;
*)
  echo "pg.sh: unknown command $cmd" >&2
  exit 2
  ;;
esac

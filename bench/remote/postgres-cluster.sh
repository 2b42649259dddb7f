# Sourced by bench/remote/*.sh: a throw-away PostgreSQL cluster on loopback in $W (which the
# caller made and removes), owned by nobody when run as root (initdb refuses root).
#   pg_start            starts it: PGBIN, PGPORT, ADMIN (the superuser's URL) set; role kyso_app
#   pg_database NAME    creates NAME, migrated by kyso-appliance ($APPLIANCE) for kyso_app
#   pg_stop             stops it (immediate)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
pg_start() {
  [ "$(id -u)" = 0 ] && chown nobody: "$W"
  PGPORT="$(free_port)"
  as_owner "$PGBIN/initdb" --no-sync -A trust -E UTF8 -U kyso_admin -D "$W/pg" >"$W/initdb.log"
  as_owner "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -w -o "-p $PGPORT -k $W -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  ADMIN="postgresql://kyso_admin@127.0.0.1:$PGPORT"
  "$PGBIN/psql" -q "$ADMIN/postgres" -c 'CREATE ROLE kyso_app LOGIN'
}
pg_database() {
  "$PGBIN/psql" -q "$ADMIN/postgres" -c "CREATE DATABASE $1"
  "$APPLIANCE" migrate --db "$ADMIN/$1" --grant kyso_app >/dev/null
}
pg_stop() { as_owner "$PGBIN/pg_ctl" -D "$W/pg" -m immediate stop >/dev/null 2>&1 || true; }

# Sourced by .ci/run after .ci/packages.sh: start a throwaway PostgreSQL server on 127.0.0.1, export its URL for the
# tests (RANKBOT_TEST_POSTGRES_URL), and stop it when the run ends. Needs root (CI runs as root).
PG_PORT=${PG_PORT:-54329}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PG_DIR=$(mktemp -d /tmp/rankbot-pg.XXXXXX)
chown postgres "$PG_DIR"
su postgres -c "$PG_BIN/initdb -D $PG_DIR/data -A trust -U postgres" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/log -w start \
  -o '-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off'" >/dev/null
trap 'su postgres -c "$PG_BIN/pg_ctl -D $PG_DIR/data -m fast stop" >/dev/null 2>&1 || true' EXIT
su postgres -c "$PG_BIN/createdb -h 127.0.0.1 -p $PG_PORT rankbot_test"
export RANKBOT_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/rankbot_test"
echo "PostgreSQL $($PG_BIN/postgres --version | awk '{print $3}') running for the tests on 127.0.0.1:$PG_PORT"

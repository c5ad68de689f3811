#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer on this machine, installing (Debian/Ubuntu) and starting the local servers
# if they are missing or down (scripts/infra.py).
# Used by `make test`, `make bench` and .ci/run. Addresses: AMQP_HOST/AMQP_PORT, PGHOST/PGPORT.
set -euo pipefail

amqp_host=${AMQP_HOST:-127.0.0.1}
amqp_port=${AMQP_PORT:-5672}
pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# not answering: installed from the distribution's packages if missing (apt-get, with sudo when not root) and
# started; where that cannot work, scripts/infra.py says what to install and this stops
"$(command -v python3 || command -v python3.11)" "$(dirname "$0")/infra.py" rabbitmq postgresql
# the broker accepts TCP before it accepts logins: wait until rabbitmqctl can talk to it
if command -v rabbitmqctl >/dev/null; then
  for _ in $(seq 1 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
fi

# A test run holds a few dozen connections at its peak; on a server shared with other runs, say so up front and
# wait for room rather than failing test after test with "too many clients" (CRM_TEST_PG_CONNECTIONS, CRM_TEST_PG_WAIT_S).
need=${CRM_TEST_PG_CONNECTIONS:-30}
if [ "$need" -gt 0 ] && command -v psql >/dev/null; then
  free_connections() {
    psql -h "$pg_host" -p "$pg_port" -U "${PGUSER:-postgres}" -d postgres -Atqc \
      "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int - count(*) FROM pg_stat_activity" 2>/dev/null || echo 0
  }
  deadline=$((SECONDS + ${CRM_TEST_PG_WAIT_S:-600}))
  free=$(free_connections)
  if [ "$free" -lt "$need" ]; then
    echo "[infra] PostgreSQL has $free free connections; the tests need about $need. Waiting for other runs to finish:"
    psql -h "$pg_host" -p "$pg_port" -U "${PGUSER:-postgres}" -d postgres -Atqc \
      "SELECT '  ' || coalesce(datname, '(none)') || ': ' || count(*) FROM pg_stat_activity GROUP BY datname ORDER BY count(*) DESC LIMIT 8" 2>/dev/null || true
    while [ "$free" -lt "$need" ] && ((SECONDS < deadline)); do sleep 5; free=$(free_connections); done
    if [ "$free" -lt "$need" ]; then
      echo "[infra] PostgreSQL still has only $free free connections (max_connections too low, or other runs hold them)." >&2
      echo "[infra] Stop the other runs, raise max_connections, or set CRM_TEST_PG_CONNECTIONS=0 to skip this check." >&2
      exit 1
    fi
  fi
fi
echo "[infra] RabbitMQ $amqp_host:$amqp_port and PostgreSQL $pg_host:$pg_port answer"

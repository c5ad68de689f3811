#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer on this machine, starting the local servers if they are down.
# Used by `make test`, `make bench` and .ci/run. Addresses: AMQP_HOST/AMQP_PORT, PGHOST/PGPORT.
set -euo pipefail

amqp_host=${AMQP_HOST:-127.0.0.1}
amqp_port=${AMQP_PORT:-5672}
pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {  # host port seconds
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do port_open "$1" "$2" && return 0; sleep 1; done
  port_open "$1" "$2"
}

if ! port_open "$amqp_host" "$amqp_port"; then
  if command -v rabbitmq-server >/dev/null; then
    echo "[infra] starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_port "$amqp_host" "$amqp_port" 90 || { echo "[infra] RabbitMQ did not come up" >&2; exit 1; }
  else
    echo "[infra] RabbitMQ is not running at $amqp_host:$amqp_port and rabbitmq-server is not installed" >&2
    exit 1
  fi
fi
# the broker accepts TCP before it accepts logins: wait until rabbitmqctl can talk to it
if command -v rabbitmqctl >/dev/null; then
  for _ in $(seq 1 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
fi

if ! port_open "$pg_host" "$pg_port"; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "[infra] starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
    wait_port "$pg_host" "$pg_port" 60 || { echo "[infra] PostgreSQL did not come up" >&2; exit 1; }
  else
    echo "[infra] PostgreSQL is not running at $pg_host:$pg_port and pg_ctlcluster is not installed" >&2
    exit 1
  fi
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

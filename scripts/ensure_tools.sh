#!/usr/bin/env bash
# The Debian packages the backup service uses, installed if missing: pg_dump/pg_restore (postgresql-client)
# and rclone; with --test also sshd (openssh-server), which the off-site tests start as a real SFTP server.
# As root (CI) it installs with apt-get; otherwise with `sudo -n` if allowed, else it says what to install
# (a failure for --test, a warning for `make run`, where SQLite backups without off-site targets need neither).
set -euo pipefail

strict=0
need=()
if ! command -v pg_dump >/dev/null || ! command -v pg_restore >/dev/null; then need+=(postgresql-client); fi
if ! command -v rclone >/dev/null; then need+=(rclone); fi
if [[ "${1:-}" == "--test" ]]; then
    strict=1
    if ! command -v sshd >/dev/null && [[ ! -x /usr/sbin/sshd ]]; then need+=(openssh-server); fi
fi
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" == 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "[tools] missing: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit $strict
fi
echo "[tools] installing ${need[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

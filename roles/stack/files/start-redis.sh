#!/bin/sh
# Redis with a password and AOF persistence; the password goes through a private file, never the command line.
set -eu
umask 077
conf=$(mktemp)
{
  echo "bind 0.0.0.0"
  echo "port 6379"
  echo "dir /data"
  echo "appendonly yes"
  echo "appendfsync everysec"
  printf 'requirepass "%s"\n' "$(cat /run/secrets/redis_password)"
} > "$conf"
exec redis-server "$conf"

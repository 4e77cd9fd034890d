#!/bin/sh
# Redis over TLS only (the master's certificate), with AOF persistence and one ACL user per role (redis-users.conf);
# no one logs in as the default user. Passwords go through a private file as SHA-256 hashes, never the command line.
# The users live in Redis's ACL file in its volume: the roles' users are written anew at each start (their
# passwords may have been rotated), the people's (playbooks/add-user.yml: ACL SETUSER, then ACL SAVE) are kept.
set -eu
umask 077
conf=$(mktemp)
acl=/data/users.acl
roles=$(grep -v '^[[:space:]]*\(#\|$\)' /cloudburst/redis-users.conf | cut -d' ' -f1 | tr '\n' '|')
{
  grep -v '^[[:space:]]*\(#\|$\)' /cloudburst/redis-users.conf | while read -r name rules; do
    case "$rules" in off*) echo "user $name reset $rules"; continue ;; esac
    secret=/run/secrets/redis_${name}_password
    [ "$name" = admin ] && secret=/run/secrets/redis_password
    hash=$(printf '%s' "$(cat "$secret")" | sha256sum | cut -d' ' -f1)
    echo "user $name reset on #$hash $rules"
  done
  if [ -f "$acl" ]; then
    grep -v -E "^user (${roles%|}) " "$acl" || true
  fi
} > "$acl.new"
mv "$acl.new" "$acl"
{
  echo "bind 0.0.0.0"
  echo "port 0"
  echo "tls-port 6379"
  echo "tls-cert-file /cloudburst/tls/server.crt"
  echo "tls-key-file /run/secrets/tls_server_key"
  echo "tls-ca-cert-file /cloudburst/tls/ca.crt"
  echo "tls-auth-clients no"
  echo "tls-protocols \"TLSv1.2 TLSv1.3\""
  echo "dir /data"
  echo "appendonly yes"
  echo "appendfsync everysec"
  echo "aclfile $acl"
} > "$conf"
exec redis-server "$conf"

#!/bin/sh
# Nginx serving /srv/cloudburst; upload directories belong to the user its workers run as. Each password file Nginx
# reads is the stack's (a Docker secret) followed by the people's (playbooks/add-user.yml), put together in
# /srv/cloudburst/.people: Nginx reads a password file at every request (a person added or removed counts at once)
# and serves no dotted path, and the files volume (so each backup) keeps them.
#   start-nginx.sh               put the password files together, then run Nginx
#   start-nginx.sh add NAME      one person's password line (standard input) added or replaced, files put together
#   start-nginx.sh remove NAME   one person's line removed, files put together
set -eu
user=www-data
id nginx >/dev/null 2>&1 && user=nginx
people=/srv/cloudburst/.people

put_together() {
  mkdir -p "$people/auth"
  touch "$people/htpasswd"
  chmod 0700 "$people"
  for role in readers uploaders results_writers results_readers; do
    cat "/run/secrets/files_htpasswd_$role" "$people/htpasswd" > "$people/auth/$role.new"
    chown "$user" "$people/auth/$role.new"
    chmod 0400 "$people/auth/$role.new"
    mv "$people/auth/$role.new" "$people/auth/$role"
  done
  chown "$user" "$people" "$people/auth"
}

case "${1:-}" in
  add|remove)
    name=$2
    {
      grep -v "^$name:" "$people/htpasswd" || true
      if [ "$1" = add ]; then cat; fi
    } > "$people/htpasswd.new"
    mv "$people/htpasswd.new" "$people/htpasswd"
    put_together
    exit 0 ;;
esac

for dir in env wheels models .tmp; do
  mkdir -p "/srv/cloudburst/$dir"
  chown "$user" "/srv/cloudburst/$dir"
done
put_together
exec nginx -g 'daemon off;'

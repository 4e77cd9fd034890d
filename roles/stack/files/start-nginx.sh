#!/bin/sh
# Nginx serving /srv/cloudburst; upload directories belong to the user its workers run as.
set -eu
user=www-data
id nginx >/dev/null 2>&1 && user=nginx
for dir in env wheels models .tmp; do
  mkdir -p "/srv/cloudburst/$dir"
  chown "$user" "/srv/cloudburst/$dir"
done
exec nginx -g 'daemon off;'

#!/bin/sh
# rq-dashboard behind basic auth, on the overlay only (Nginx serves it over TLS), Redis over TLS; passwords from Docker secrets into its environment, not its command line.
set -eu
RQ_DASHBOARD_PASSWORD=$(cat /run/secrets/rq_dashboard_password)
RQ_DASHBOARD_REDIS_URL="rediss://dashboard:$(cat /run/secrets/redis_dashboard_password)@${CLOUDBURST_REDIS_HOST:-redis}:6379/0?ssl_ca_certs=/cloudburst/tls/ca.crt"
export RQ_DASHBOARD_PASSWORD RQ_DASHBOARD_REDIS_URL
exec rq-dashboard --bind 0.0.0.0 --port 9181 --json --username "${RQ_DASHBOARD_USERNAME:-admin}"

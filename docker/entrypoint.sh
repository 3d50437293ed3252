#!/bin/sh
# One image, every process: the first argument picks it. `exec` makes Python PID 1, so SIGTERM
# reaches it directly (the listeners drain, the scheduler stops after its tick).
#   public     the apps' listener (python -m halobestie.serve public; PUBLIC_HOST/PUBLIC_PORT)
#   internal   control center, docs, /metrics (INTERNAL_HOST/INTERNAL_PORT; never publish it)
#   scheduler  the timers (manage.py run_scheduler); run exactly one
#   migrate    manage.py migrate, a one-off before starting a new image; never on boot
#   seed       manage.py seed (idempotent defaults, the admin from ADMIN_EMAIL/ADMIN_PASSWORD)
#   manage     any other manage.py command: `manage createsuperuser`, `manage check --deploy`
set -eu

command="${1:-public}"
[ "$#" -gt 0 ] && shift

case "$command" in
  public|internal)
    exec python -m halobestie.serve "$command" "$@"
    ;;
  scheduler)
    exec python manage.py run_scheduler "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  seed)
    exec python manage.py seed "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  -h|--help|help)
    sed -n '2,10p' "$0"
    ;;
  *)
    echo "unknown command: $command (public|internal|scheduler|migrate|seed|manage ...)" >&2
    exit 64
    ;;
esac

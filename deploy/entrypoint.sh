#!/bin/sh
# Container entry point: check that the data directory is writable (a volume mounted from
# the host keeps the host's owner), then replace this shell with the command (by default
# `coinharvest run`), so the service is PID 1 and receives SIGTERM itself.
set -eu

if [ -z "${DATABASE_URL:-}" ] && [ -n "${COINHARVEST_DB:-}" ]; then
    dir=$(dirname -- "$COINHARVEST_DB")
    if [ ! -w "$dir" ]; then
        echo "coinharvest: $dir is not writable by uid $(id -u); chown the volume to" \
             "$(id -u):$(id -g) or set DATABASE_URL" >&2
        exit 2
    fi
fi

# `docker run IMAGE collect ...` is short for `docker run IMAGE coinharvest collect ...`;
# any other program (python, sh, a path) runs as it is. coinharvest's own commands are
# listed: `command -v` also finds shell builtins (`export`), which `exec` cannot run.
case "${1:-}" in
    "") set -- coinharvest run ;;
    -*) set -- coinharvest "$@" ;;
    coins|collect|db|demo|emulator|export|history|latest|limits|run|runs|serve|sources|\
    verify|version)
        set -- coinharvest "$@" ;;
    *) command -v -- "$1" >/dev/null 2>&1 || set -- coinharvest "$@" ;;
esac
exec "$@"

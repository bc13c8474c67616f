#!/bin/sh
# tandem-pod.sh ROLE: the command of every container of a Tandem model group (docs/deploy.md).
# Mounted from the ConfigMap tandem-pod-script; everything it needs comes from the environment the
# manifests set, so the local simulation (tests/deploy) runs it exactly as rendered.
#
#   model        (init container) checks that $TANDEM_MODEL holds a checkpoint; with
#                TANDEM_TINY_MODEL=1 writes the built-in tiny model there first (demo overlays).
#   ranks        this pod's ranks: `tandem worker --local-ranks $TANDEM_GPUS_PER_NODE`, one process
#                per GPU on ports TANDEM_WORKER_PORT + i.
#   coordinator  `tandem serve` over the group's tp x pp ranks (leader pod only).
#
# A group is tp x pp ranks on nodes = tp * pp / gpus_per_node pods; node k holds ranks
# k * gpus_per_node ... (k + 1) * gpus_per_node - 1 (rank = stage * tp + tp_rank), so a TP group
# never leaves a node and the pipeline crosses nodes. Node 0 is the leader pod (this pod for the
# coordinator: $POD_IP). The other nodes' pods are found by name:
#   LeaderWorkerSet: $LWS_LEADER_ADDRESS = <set>-<group>.<subdomain>..., node k = <set>-<group>-k.<subdomain>...
#   StatefulSets:    leader pod $POD_NAME = <leaders>-<group>, node k = $TANDEM_WORKERS_STATEFULSET-<group * (nodes - 1) + k - 1>.$TANDEM_WORKERS_SERVICE
set -eu

die() {
  echo "tandem-pod: $*" >&2
  exit 2
}

role=${1:-}
tp=${TANDEM_TP:?TANDEM_TP is not set}
pp=${TANDEM_PP:?TANDEM_PP is not set}
per_node=${TANDEM_GPUS_PER_NODE:?TANDEM_GPUS_PER_NODE is not set}
port=${TANDEM_WORKER_PORT:-7000}
ranks=$((tp * pp))
[ "$tp" -ge 1 ] && [ "$pp" -ge 1 ] && [ "$per_node" -ge 1 ] || die "TANDEM_TP=$tp, TANDEM_PP=$pp and TANDEM_GPUS_PER_NODE=$per_node must be >= 1"
[ $((per_node % tp)) -eq 0 ] || die "TANDEM_GPUS_PER_NODE=$per_node is not a multiple of TANDEM_TP=$tp: a TP group must stay inside one node"
[ $((ranks % per_node)) -eq 0 ] || die "tp x pp = $ranks ranks do not fill whole nodes of TANDEM_GPUS_PER_NODE=$per_node"
nodes=$((ranks / per_node))

secret_args=""
if [ -n "${TANDEM_GROUP_SECRET_FILE:-}" ]; then
  secret_args="--group-secret-file $TANDEM_GROUP_SECRET_FILE"
fi

# The host of node k (k >= 1) of this pod's group.
node_host() {
  k=$1
  if [ -n "${LWS_LEADER_ADDRESS:-}" ]; then
    [ "${LWS_GROUP_SIZE:-}" = "$nodes" ] || die "LWS_GROUP_SIZE=${LWS_GROUP_SIZE:-} but tp x pp / gpus per node = $nodes pods (leaderWorkerTemplate.size)"
    echo "${LWS_LEADER_ADDRESS%%.*}-$k.${LWS_LEADER_ADDRESS#*.}"
  else
    : "${POD_NAME:?POD_NAME is not set (StatefulSet variant)}"
    : "${TANDEM_WORKERS_STATEFULSET:?TANDEM_WORKERS_STATEFULSET is not set}"
    : "${TANDEM_WORKERS_SERVICE:?TANDEM_WORKERS_SERVICE is not set}"
    group=${POD_NAME##*-}
    echo "$TANDEM_WORKERS_STATEFULSET-$((group * (nodes - 1) + k - 1)).$TANDEM_WORKERS_SERVICE"
  fi
}

case "$role" in
  model)
    model=${TANDEM_MODEL:?TANDEM_MODEL is not set}
    if [ "${TANDEM_TINY_MODEL:-0}" = 1 ] && [ ! -f "$model/config.json" ]; then
      tandem make-tiny-model "$model" --tokenizer "${TANDEM_TOKENIZER:?TANDEM_TOKENIZER is not set}"
    fi
    [ -f "$model/config.json" ] || die "no checkpoint at TANDEM_MODEL=$model (config.json missing): mount the model volume (docs/deploy.md, \"Where the model comes from\")"
    echo "tandem-pod: checkpoint at $model"
    ;;
  ranks)
    metrics_args=""
    if [ -n "${TANDEM_WORKER_METRICS_PORT:-}" ]; then
      metrics_args="--metrics-port $TANDEM_WORKER_METRICS_PORT"
    fi
    # shellcheck disable=SC2086  # word splitting of the optional flags is intended
    exec tandem worker --listen "${POD_IP:?POD_IP is not set}:$port" --local-ranks "$per_node" \
      $secret_args $metrics_args ${TANDEM_WORKER_ARGS:-}
    ;;
  coordinator)
    : "${POD_IP:?POD_IP is not set}"
    workers=""
    k=0
    while [ "$k" -lt "$nodes" ]; do
      if [ "$k" -eq 0 ]; then host=$POD_IP; else host=$(node_host "$k"); fi
      j=0
      while [ "$j" -lt "$per_node" ]; do
        workers="$workers${workers:+,}$host:$((port + j))"
        j=$((j + 1))
      done
      k=$((k + 1))
    done
    extra=""
    if [ -n "${TANDEM_TLS_DIR:-}" ]; then
      extra="$extra --tls-cert $TANDEM_TLS_DIR/tls.crt --tls-key $TANDEM_TLS_DIR/tls.key"
    fi
    if [ -n "${TANDEM_API_KEYS_FILE:-}" ]; then
      extra="$extra --api-keys-file $TANDEM_API_KEYS_FILE"
    fi
    if [ -n "${TANDEM_METRICS_PORT:-}" ]; then
      extra="$extra --metrics-port $TANDEM_METRICS_PORT"
    fi
    echo "tandem-pod: group of $nodes pods, tp=$tp pp=$pp, workers $workers" >&2
    # shellcheck disable=SC2086
    exec tandem serve --host "$POD_IP" --port "${TANDEM_PORT:-50051}" --tp "$tp" --pp "$pp" \
      --model "${TANDEM_MODEL:?TANDEM_MODEL is not set}" --workers "$workers" \
      --rendezvous-host "$POD_IP" --start-timeout "${TANDEM_START_TIMEOUT:-900}" \
      --drain-timeout "${TANDEM_DRAIN_TIMEOUT:-30}" $secret_args $extra ${TANDEM_SERVE_ARGS:-}
    ;;
  *)
    die "usage: tandem-pod.sh model|ranks|coordinator (got '$role')"
    ;;
esac

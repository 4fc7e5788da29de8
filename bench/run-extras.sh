#!/usr/bin/env bash
# run-extras.sh: batching (switchboard.v1.batch) and permessage-deflate against the plain
# switchboard.v1 baseline, measured in the same run, variants alternating, one fresh server
# per run. Writes bench/results/extras-<date>.md (raw results next to it as .jsonl).
#
#   bench/run-extras.sh                 # 1k connections, 2 repeats (~4 min)
#   IDLE_10K=1 bench/run-extras.sh      # also idle memory at 10k connections (1 repeat)
#
# Tests:
#   throughput  1k subscribers, 128-byte payloads, window 16: plain v1 vs batch (+ the floor once)
#   idle        RSS per connection, compression off / no-context-takeover / context-takeover
#               (the probe publications, 1 KiB records payload, use the compressor once)
#   latency     fixed rate, 1 KiB records payload: server CPU per delivery and bytes on the
#               wire per delivery for the three compression modes
#
# Settings (environment): REPEATS (2), CONNS (1000), DURATION (5s), WINDOW (16), SETTLE (5s),
# LAT_RATE (20 publications/s), BIG_PAYLOAD (1024), IDLE_10K (0), PORT_BASE (23000).
# Bytes on the wire are what the load generator's clients read from their sockets
# (a counting net.Conn under coder/websocket): frame headers and compressed payloads.
set -uo pipefail

cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-2}
CONNS=${CONNS:-1000}
DURATION=${DURATION:-5s}
WINDOW=${WINDOW:-16}
SETTLE=${SETTLE:-5s}
LAT_RATE=${LAT_RATE:-20}
BIG_PAYLOAD=${BIG_PAYLOAD:-1024}
IDLE_10K=${IDLE_10K:-0}
port=${PORT_BASE:-23000}

. bench/lib.sh
if ! "$tmp/switchboard" --help 2>&1 | grep -q -- '--compression '; then
	log "this switchboard has no --compression flag"
	exit 1
fi

# run_one GROUP VARIANT BASELINE TARGET "SERVER FLAGS" LOADGEN FLAGS…: a fresh server, one
# load generator run, the JSON result tagged with group/variant/baseline appended.
run_one() {
	local group=$1 variant=$2 base=$3 target=$4 sflags=$5
	shift 5
	next_port
	local addr=127.0.0.1:$port args
	if [ "$target" = floor ]; then
		"$tmp/floor" --addr "$addr" >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target floor)
	else
		# shellcheck disable=SC2086 # sflags is a list of words
		"$tmp/switchboard" --addr "$addr" "${sb_flags[@]}" $sflags >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target switchboard --token "$token" --api-key "$apikey")
	fi
	log "$(date +%T) [$group] $variant: server $sflags; loadgen $* (pid $server_pid)"
	local out
	out=$("$tmp/loadgen" "${args[@]}" --url "http://$addr" --server-pid "$server_pid" --json "$@" 2>"$tmp/loadgen.log")
	sed 's/^/    /' "$tmp/loadgen.log" >&2
	if [ -z "$out" ]; then
		out='{"error":"loadgen gave no result"}'
		tail -5 "$tmp/server.log" | sed 's/^/    server: /' >&2
	fi
	echo "$out" | jq -c --arg g "$group" --arg v "$variant" --arg b "$base" '. + {group: $g, variant: $v, baseline: $b}' >>"$results"
	kill -TERM "$server_pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=
}

tp=(--mode throughput --conns "$CONNS" --duration "$DURATION" --window "$WINDOW" --payload-size 128)
lat=(--mode latency --conns "$CONNS" --duration "$DURATION" --rate "$LAT_RATE" --payload-size "$BIG_PAYLOAD" --payload-kind records --subprotocol v1)
idle=(--mode idle --settle "$SETTLE" --payload-size "$BIG_PAYLOAD" --payload-kind records --subprotocol v1)
modes=(off no-context-takeover context-takeover)

started=$(date +%s)
g_tp="throughput, ${CONNS} subscribers, 128-byte payload, window $WINDOW"
g_lat="latency mode, ${CONNS} subscribers, $LAT_RATE publications/s, ${BIG_PAYLOAD}-byte records payload"
run_one "$g_tp" floor "plain v1" floor "" "${tp[@]}"
for rep in $(seq "$REPEATS"); do
	log "== repeat $rep of $REPEATS"
	order=("plain v1" batch)
	[ $((rep % 2)) = 0 ] && order=(batch "plain v1")
	for v in "${order[@]}"; do
		sp=v1
		[ "$v" = batch ] && sp=batch
		run_one "$g_tp" "$v" "plain v1" switchboard "" "${tp[@]}" --subprotocol "$sp"
	done
	ms=("${modes[@]}")
	[ $((rep % 2)) = 0 ] && ms=(context-takeover no-context-takeover off)
	for c in "${ms[@]}"; do
		run_one "idle memory, $CONNS connections" "$c" off switchboard "--compression $c" "${idle[@]}" --conns "$CONNS" --compression "$c"
	done
	for c in "${ms[@]}"; do
		run_one "$g_lat" "$c" off switchboard "--compression $c" "${lat[@]}" --compression "$c"
	done
done
if [ "$IDLE_10K" = 1 ]; then
	for c in "${modes[@]}"; do
		run_one "idle memory, 10000 connections" "$c" off switchboard "--compression $c" "${idle[@]}" --conns 10000 --compression "$c"
	done
fi
elapsed=$(($(date +%s) - started))

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
md=bench/results/extras-$stamp.md
commit=$(commit_label)
{
	echo "# Batching and compression, $(date '+%Y-%m-%d %H:%M')"
	echo
	echo "**Server and load generator share the same $(nproc) CPU cores**; loopback only. Each cell: median over"
	echo "the repeats (range in parentheses); ratios are to the baseline row of the same table, same run."
	echo "Bytes on the wire: what the clients read from their sockets (frame headers and compressed payloads)."
	echo "other_cpu_cores: CPU used by the rest of the machine during the run (much above 0.2: shared with other work)."
	echo
	echo "- commit $commit, $(go version | cut -d' ' -f3), $REPEATS repeat(s), $elapsed s in all; server flags \`$(echo "${sb_flags[*]}" | sed "s/$secret/…/; s/$apikey/…/")\` plus the variant's"
	echo
	jq -s -r -f bench/extras-report.jq "$results"
} >"$md"
cp "$results" "bench/results/extras-$stamp.jsonl"
cat "$md"
log "wrote $md and bench/results/extras-$stamp.jsonl"

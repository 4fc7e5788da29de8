#!/usr/bin/env bash
# run-matrix.sh: Switchboard against the floor broadcaster (bench/floor), same load, same
# machine, one fresh server process per run. Writes bench/results/matrix-<date>.md (and the
# raw results next to it as .jsonl) and prints the table.
#
#   bench/run-matrix.sh              # full matrix: 1k and 10k connections, 3 repeats (~7 min)
#   QUICK=1 bench/run-matrix.sh      # smoke run: 1k only, 1 repeat (~1 min)
#
# Settings (environment): REPEATS (3), SIZES ("1000 10000"), DURATION (10s, throughput and
# latency), WINDOW (16, throughput), LAT_DELIVERIES (20000: the latency test publishes
# LAT_DELIVERIES/N publications per second, the same delivery load at every size), SETTLE
# (5s, idle), PAYLOAD (128), STORM (1: include the storm test), PORT_BASE (21000).
#
# Everything runs on 127.0.0.0/8. The server and the load generator share the machine's
# CPUs: the figures compare Switchboard with the floor; they are not capacity figures.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

QUICK=${QUICK:-0}
REPEATS=${REPEATS:-3}
SIZES=${SIZES:-"1000 10000"}
if [ "$QUICK" = 1 ]; then
	REPEATS=1
	SIZES=1000
fi
DURATION=${DURATION:-10s}
WINDOW=${WINDOW:-16}
LAT_DELIVERIES=${LAT_DELIVERIES:-20000}
SETTLE=${SETTLE:-5s}
PAYLOAD=${PAYLOAD:-128}
STORM=${STORM:-1}
port=${PORT_BASE:-21000}

. bench/lib.sh

# run_one TARGET MODE CONNS [LOADGEN FLAGS…]: starts a fresh server, runs the load
# generator against it, stops the server, appends the JSON result.
run_one() {
	local target=$1 mode=$2 conns=$3
	shift 3
	next_port
	local addr=127.0.0.1:$port args
	if [ "$target" = floor ]; then
		"$tmp/floor" --addr "$addr" >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target floor)
	else
		"$tmp/switchboard" --addr "$addr" "${sb_flags[@]}" >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target switchboard --token "$token" --api-key "$apikey")
	fi
	log "$(date +%T) $target $mode $conns $* (port $port, pid $server_pid)"
	local out status
	out=$("$tmp/loadgen" "${args[@]}" --url "http://$addr" --server-pid "$server_pid" \
		--mode "$mode" --conns "$conns" --payload-size "$PAYLOAD" --json "$@" 2>"$tmp/loadgen.log")
	status=$?
	sed 's/^/    /' "$tmp/loadgen.log" >&2
	if [ -n "$out" ]; then
		echo "$out" >>"$results"
	else
		log "    loadgen exited with status $status and no result"
		tail -5 "$tmp/server.log" | sed 's/^/    server: /' >&2
		printf '{"target":"%s","mode":"%s","conns":%d,"error":"loadgen exited with status %d and no result"}\n' \
			"$target" "$mode" "$conns" "$status" >>"$results"
	fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		log "    the server had exited:"
		tail -5 "$tmp/server.log" | sed 's/^/    server: /' >&2
	fi
	kill -TERM "$server_pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=
}

# pair runs one test on both targets, alternating which goes first from repeat to repeat.
pair() {
	if [ $((rep % 2)) = 1 ]; then
		run_one floor "$@"
		run_one switchboard "$@"
	else
		run_one switchboard "$@"
		run_one floor "$@"
	fi
}

quiet_before=$(busy_cores 2)
log "machine busy before the runs: $quiet_before cores"

started=$(date +%s)
for rep in $(seq "$REPEATS"); do
	log "== repeat $rep of $REPEATS"
	for n in $SIZES; do
		rate=$(awk -v d="$LAT_DELIVERIES" -v n="$n" 'BEGIN { printf "%g", d / n }')
		pair idle "$n" --settle "$SETTLE"
		if [ "$STORM" = 1 ]; then
			pair storm "$n"
		fi
		pair throughput "$n" --duration "$DURATION" --window "$WINDOW"
		pair latency "$n" --duration "$DURATION" --rate "$rate"
	done
done
elapsed=$(($(date +%s) - started))
quiet_after=$(busy_cores 2)

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
md=bench/results/matrix-$stamp.md
commit=$(commit_label)
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')
{
	echo "# Switchboard vs floor, $(date '+%Y-%m-%d %H:%M')"
	echo
	echo "**Server and load generator share the same $(nproc) CPU cores** ($cpu, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM,"
	echo "Linux $(uname -r)); all traffic is on loopback. The figures compare Switchboard with the floor"
	echo "broadcaster (bench/floor) under the same load; they are not capacity figures. See bench/README.md."
	echo
	echo "- CPU busy with other work (2 s samples, in cores): $quiet_before before the runs, $quiet_after after; during each run see the \"rest of the machine\" rows (kernel work charged to neither process, plus anything else running): much above 0.2 means the run shared the CPUs with something else"
	echo "- commit $commit, $(go version | cut -d' ' -f3), $REPEATS repeat(s), $elapsed s in all$([ "$QUICK" = 1 ] && echo ', QUICK mode')"
	echo "- $PAYLOAD-byte JSON payloads, one topic, every client subscribed to it; clients spread over 127.0.0.2 and up, one address per 5,000"
	echo "- idle: settle $SETTLE; throughput: $DURATION, window $WINDOW publications in flight; latency: $DURATION at $LAT_DELIVERIES deliveries/s ($LAT_DELIVERIES / N publications per second)"
	echo "- switchboard flags: \`--dev=false --jwt-secret … --api-key … --log-level warn --conn-rate-per-ip -1 --max-conns-per-user -1 --message-rate -1 --send-queue-size 4096\`; every client authenticates with one shared token (\`switchboard token --user bench --ttl 2h\`)"
	echo "- floor: \`floor --addr …\`. It writes to the subscribers from the publishing HTTP handler, one after another: a bound on memory and connection cost, not on throughput (see bench/README.md)"
	echo
	"$tmp/loadgen" report "$results"
} >"$md"
cp "$results" "bench/results/matrix-$stamp.jsonl"
cat "$md"
log
log "wrote $md and bench/results/matrix-$stamp.jsonl"

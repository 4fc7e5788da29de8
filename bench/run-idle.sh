#!/usr/bin/env bash
# run-idle.sh: idle memory per connection of Switchboard against the floor (bench/floor), and
# optionally against earlier commits of Switchboard, in the same run: the variants
# alternate (their order rotates from repeat to repeat), one fresh server process per run,
# medians over the repeats. Writes bench/results/idle-<date>.md (raw results next to it as
# .jsonl) and prints the tables.
#
#   bench/run-idle.sh                      # 10k and 1k idle connections, 3 repeats (~4 min)
#   BEFORE=3a85ac7 bench/run-idle.sh       # also that commit's server, built from git
#   BEFORE="3a85ac7 cb95e6e" bench/run-idle.sh   # several commits: one variant each
#   TP=1 bench/run-idle.sh                 # also flat-out fan-out at 1k and 10k subscribers
#   SIZES= TP=1 bench/run-idle.sh          # fan-out only
#   ALT_FLAGS="--read-buffer-size 256" bench/run-idle.sh   # also the server with these flags
#
# Settings (environment): REPEATS (3), SIZES ("10000 1000"), SETTLE (5s), BEFORE (none),
# ALT_FLAGS (none), TP (0), TP_SIZES ("1000 10000"), DURATION (10s), WINDOW (16),
# SERVER_FLAGS (extra flags for every switchboard variant), PORT_BASE (25000).
#
# The idle test is the load generator's --mode idle: every client authenticates, subscribes
# to one topic and receives one probe publication, then nothing happens for SETTLE and the
# server's VmRSS is read. RSS does not depend much on what else runs on the machine;
# throughput does: every throughput row carries other_cpu_cores, the CPU the rest of the
# machine used during the run.
set -uo pipefail

cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-3}
SIZES=${SIZES-"10000 1000"}
SETTLE=${SETTLE:-5s}
BEFORE=${BEFORE:-}
ALT_FLAGS=${ALT_FLAGS:-}
TP=${TP:-0}
TP_SIZES=${TP_SIZES-"1000 10000"}
DURATION=${DURATION:-10s}
WINDOW=${WINDOW:-16}
SERVER_FLAGS=${SERVER_FLAGS:-}
port=${PORT_BASE:-25000}

. bench/lib.sh
variants=(floor)
befores=
for rev in $BEFORE; do
	rev=$(git rev-parse --short "$rev") || exit 1
	mkdir "$tmp/src-$rev"
	git archive "$rev" | tar -x -C "$tmp/src-$rev" || exit 1
	(cd "$tmp/src-$rev" && go build -o "$tmp/bin-$rev" ./cmd/switchboard) || exit 1
	variants+=("$rev")
	befores="$befores $rev"
done
variants+=(switchboard)
[ -n "$ALT_FLAGS" ] && variants+=(alt)

# run_one VARIANT LOADGEN FLAGS…: a fresh server, one load generator run, the JSON result
# tagged with the variant appended.
run_one() {
	local variant=$1
	shift
	next_port
	local addr=127.0.0.1:$port args
	case $variant in
	floor)
		"$tmp/floor" --addr "$addr" >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target floor)
		;;
	*)
		local bin=$tmp/switchboard extra=
		[ -x "$tmp/bin-$variant" ] && bin=$tmp/bin-$variant
		[ "$variant" = alt ] && extra=$ALT_FLAGS
		# shellcheck disable=SC2086 # SERVER_FLAGS and extra are lists of words
		"$bin" --addr "$addr" "${sb_flags[@]}" $SERVER_FLAGS $extra >"$tmp/server.log" 2>&1 &
		server_pid=$!
		args=(--target switchboard --token "$token" --api-key "$apikey")
		;;
	esac
	log "$(date +%T) $variant $* (pid $server_pid)"
	local out
	out=$("$tmp/loadgen" "${args[@]}" --url "http://$addr" --server-pid "$server_pid" --json "$@" 2>"$tmp/loadgen.log")
	sed 's/^/    /' "$tmp/loadgen.log" >&2
	if [ -z "$out" ]; then
		out='{"error":"loadgen gave no result"}'
		tail -5 "$tmp/server.log" | sed 's/^/    server: /' >&2
	fi
	echo "$out" | jq -c --arg v "$variant" '. + {variant: $v}' >>"$results"
	kill -TERM "$server_pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=
}

# each_variant REPEAT LOADGEN FLAGS…: runs every variant once, starting with a different one
# in each repeat.
each_variant() {
	local rep=$1 n=${#variants[@]} i
	shift
	for i in $(seq 0 $((n - 1))); do
		run_one "${variants[$(((i + rep) % n))]}" "$@"
	done
}

quiet_before=$(busy_cores 2)
log "machine busy before the runs: $quiet_before cores"

started=$(date +%s)
for rep in $(seq "$REPEATS"); do
	log "== repeat $rep of $REPEATS"
	for n in $SIZES; do
		each_variant "$rep" --mode idle --conns "$n" --settle "$SETTLE"
	done
	if [ "$TP" = 1 ]; then
		for n in $TP_SIZES; do
			each_variant "$rep" --mode throughput --conns "$n" --duration "$DURATION" --window "$WINDOW"
		done
	fi
done
elapsed=$(($(date +%s) - started))
quiet_after=$(busy_cores 2)

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
md=bench/results/idle-$stamp.md
commit=$(commit_label)
{
	echo "# Idle memory against the floor, $(date '+%Y-%m-%d %H:%M')"
	echo
	echo "**Server and load generator share the same $(nproc) CPU cores**; loopback only. Each cell: median over"
	echo "the repeats (range in parentheses); ratios are of the medians, to the floor of the same run."
	echo
	echo "- switchboard: commit $commit$([ -n "$befores" ] && echo "; earlier commits:$befores")$([ -n "$ALT_FLAGS" ] && echo "; alt: switchboard with flags $ALT_FLAGS"), $(go version | cut -d' ' -f3), $REPEATS repeat(s), $elapsed s in all"
	echo "- server flags \`$(echo "${sb_flags[*]} $SERVER_FLAGS" | sed "s/$secret/…/; s/$apikey/…/")\`; idle: settle $SETTLE; throughput: $DURATION, window $WINDOW"
	echo "- CPU busy with other work (2 s samples, in cores): $quiet_before before the runs, $quiet_after after"
	echo
	jq -s -r '
	def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
	  else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def fmt: if . == null then "–" elif . >= 100 then (. | round | tostring)
	  elif . >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
	def cell($f): [.[] | .[$f]] as $v | ($v | median) as $m |
	  if ($v | length) > 1 then "\($m | fmt) (\($v | min | fmt)–\($v | max | fmt))" else ($m | fmt) end;
	def med($f): [.[] | .[$f]] | median;
	def ratio($a; $b): if $a == null or $b == null or $b == 0 then "–" else "\(($a / $b * 100 | round) / 100)×" end;
	. as $all
	| [($all | map(select(.mode == "idle")) | map(.conns) | unique | reverse)[] as $n
	   | ($all | map(select(.mode == "idle" and .conns == $n))) as $rows
	   | ($rows | map(select(.variant == "floor"))) as $fl
	   | "### Idle, \($n) connections\n\n| variant | RSS per connection, KiB | ratio to the floor | server CPU per connection set up, µs |\n|---|---|---|---|\n"
	     + ([($order | split(" ") | map(select(. as $x | $rows | map(.variant) | index([$x]))))[] as $v | ($rows | map(select(.variant == $v))) as $r
	         | "| \($v) | \($r | cell("rss_per_conn_kb")) | \(ratio($r | med("rss_per_conn_kb"); $fl | med("rss_per_conn_kb"))) | \($r | cell("server_cpu_conn_us")) |"]
	        | join("\n"))]
	+ [($all | map(select(.mode == "throughput")) | map(.conns) | unique)[] as $n
	   | ($all | map(select(.mode == "throughput" and .conns == $n))) as $rows
	   | ($rows | map(select(.variant == "floor"))) as $fl
	   | "### Flat-out fan-out, \($n) subscribers\n\n| variant | deliveries/s | ratio to the floor | server CPU per delivery, µs | ratio to the floor | lost | other_cpu_cores |\n|---|---|---|---|---|---|---|\n"
	     + ([($order | split(" ") | map(select(. as $x | $rows | map(.variant) | index([$x]))))[] as $v | ($rows | map(select(.variant == $v))) as $r
	         | "| \($v) | \($r | cell("msgs_per_s")) | \(ratio($r | med("msgs_per_s"); $fl | med("msgs_per_s"))) | \($r | cell("server_cpu_msg_us")) | \(ratio($r | med("server_cpu_msg_us"); $fl | med("server_cpu_msg_us"))) | \([$r[] | .lost] | add) | \($r | cell("other_cpu_cores")) |"]
	        | join("\n"))]
	| join("\n\n")
	+ ([$all[] | select(.error != "" and .error != null) | "\n\n- problem in \(.variant) \(.mode) \(.conns): \(.error)"] | join(""))
	' --arg order "${variants[*]}" "$results"
} >"$md"
cp "$results" "bench/results/idle-$stamp.jsonl"
cat "$md"
log "wrote $md and bench/results/idle-$stamp.jsonl"

# lib.sh: what the bench scripts share. Sourced (not run) from the repository root, after
# the script has set `port` to its first port: a temporary directory with the switchboard,
# floor and loadgen binaries, cleanup on exit, a JWT secret, an API key and one user token,
# the server flags every comparison uses, an empty results file, next_port, busy_cores and
# commit_label.

tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -KILL "$server_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$@" >&2; }

log "building into $tmp"
go build -o "$tmp/switchboard" ./cmd/switchboard || exit 1
go build -o "$tmp/floor" ./bench/floor || exit 1
go build -o "$tmp/loadgen" ./bench/loadgen || exit 1

secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
apikey=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# One user token shared by every client, made by the server's own token command.
token=$("$tmp/switchboard" token --user bench --ttl 2h --secret "$secret") || exit 1

# The Switchboard server's flags: the per-IP, per-user and per-connection limits off (all
# clients are one user on a few addresses), and a send queue far deeper than the window,
# so that flat-out publishing never trips the slow-consumer close.
sb_flags=(--dev=false --jwt-secret "$secret" --api-key "$apikey" --log-level warn
	--conn-rate-per-ip -1 --max-conns-per-user -1 --message-rate -1 --send-queue-size 4096)

results=$tmp/results.jsonl
: >"$results"

# next_port sets port to the next one nobody listens on.
next_port() {
	port=$((port + 1))
	while ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; do
		port=$((port + 1))
	done
}

# busy_cores SECONDS: how many cores the machine keeps busy over that time (from /proc/stat).
busy_cores() {
	local a b
	a=$(head -1 /proc/stat)
	sleep "$1"
	b=$(head -1 /proc/stat)
	echo "$a $b" | awk -v s="$1" '{ n = (NF - 2) / 2; for (i = 2; i <= n + 1; i++) { d = $(i + n + 1) - $i; if (i != 5 && i != 6 && i < 10) busy += d } printf "%.2f", busy / 100 / s }'
}

# commit_label prints the commit measured, and says so when the tree has uncommitted changes.
commit_label() {
	local c
	c=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	[ -n "$(git status --porcelain 2>/dev/null)" ] && c="$c (with uncommitted changes)"
	echo "$c"
}

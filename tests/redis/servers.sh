#!/usr/bin/env bash
# servers.sh - real Redis servers on loopback for the shared-tier tests.
#
#   servers.sh setup DIR        the ctest fixture (redis_servers_start): a
#                               3-master cluster in DIR/cluster and a standalone
#                               server in DIR/standalone; each DIR/X/seeds holds
#                               "127.0.0.1:port[,...]"
#   servers.sh cleanup DIR      the ctest fixture (redis_servers_stop): stops
#                               every server under DIR, private ones included
#   servers.sh cluster DIR N [redis-server args...]   a private N-master cluster
#                               (with TKV_REDIS_REPLICAS=1: and a replica of
#                               each master; seeds then name every node)
#   servers.sh standalone DIR [redis-server args...]  a private standalone server
#   servers.sh stop DIR         stops the servers under DIR (by pidfile)
#
# Ports: chosen at random in 15000-22767 among ports nobody listens on (and,
# for a cluster node, its bus port + 10000, which stays below Linux's
# ephemeral range 32768+), so ctest runs of several worktrees on one machine
# do not collide. A server that lost a race for its port (it exits, or the
# port answers with another process's pid) is retried on another port.
# When redis-server or redis-cli is missing, setup writes the reason to
# DIR/unavailable and succeeds: the tests then skip, visibly, with that
# reason (and fail under CI=true, see README "Skipped tests").
set -uo pipefail

die() { echo "servers.sh: $*" >&2; exit 1; }

# Nothing listens on port $1: a connection to it is refused. (bash's
# /dev/tcp, not ss: a bare Debian image has no iproute2.)
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts one redis-server in DIR; prints its port. Args: DIR BUS(0|1) ARGS...
start_one() {
	local dir=$1 bus=$2 try port pid i
	shift 2
	mkdir -p "$dir"
	for try in 1 2 3 4 5 6 7 8; do
		port=$((15000 + RANDOM % 7768))
		port_free "$port" || continue
		[[ $bus == 1 ]] && { port_free $((port + 10000)) || continue; }
		rm -f "$dir/redis.pid"
		(cd "$dir" && redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
			--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
			--save '' --appendonly no "$@") >/dev/null || continue
		# The pidfile appears once the port is bound (Redis writes it after
		# listening); a server that could not bind exits without one.
		for i in $(seq 100); do
			[[ -s $dir/redis.pid ]] && break
			sleep 0.05
		done
		[[ -s $dir/redis.pid ]] || continue
		pid=$(cat "$dir/redis.pid")
		for i in $(seq 100); do
			if [[ $(redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' |
				sed -n 's/^process_id://p') == "$pid" ]]; then
				echo "$port"
				return 0
			fi
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
	done
	die "could not start redis-server in $dir (see $dir/redis.log)"
}

wait_cluster_ok() {
	local p i
	for p in "$@"; do
		for i in $(seq 200); do
			redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
			sleep 0.05
		done
		redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' ||
			die "cluster node $p not ok"
	done
}

start_cluster() {
	local dir=$1 n=$2 i ports=() addrs=() replicas=${TKV_REDIS_REPLICAS:-0}
	shift 2
	for i in $(seq $((n * (1 + replicas)))); do
		ports+=("$(start_one "$dir/node$i" 1 --cluster-enabled yes \
			--cluster-config-file nodes.conf "$@")") || exit 1
		addrs+=("127.0.0.1:${ports[-1]}")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
		>"$dir/create.log" 2>&1 || die "cluster create failed (see $dir/create.log)"
	wait_cluster_ok "${ports[@]}"
	(IFS=,; echo "${addrs[*]}") >"$dir/seeds"
}

start_standalone() {
	local dir=$1 port
	shift
	port=$(start_one "$dir" 0 "$@") || exit 1
	echo "127.0.0.1:$port" >"$dir/seeds"
}

# A daemonized server's parent is whoever adopts orphans, which may be slow
# to reap it: a zombie counts as gone.
gone() {
	local st
	st=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null)
	[[ -z $st || $st == Z || $st == X ]]
}

# Stops every server whose pidfile is under DIR; a stopped (SIGSTOP) one is
# continued first so it can act on SIGTERM.
stop_all() {
	local f pid i
	while IFS= read -r f; do
		pid=$(cat "$f" 2>/dev/null) || continue
		[[ $pid =~ ^[0-9]+$ ]] || continue
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] || continue
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 100); do
			gone "$pid" && break
			sleep 0.05
		done
		gone "$pid" || kill -KILL "$pid" 2>/dev/null
		rm -f "$f"
	done < <(find "$1" -name redis.pid 2>/dev/null)
	return 0
}

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: servers.sh setup|cleanup|cluster|standalone|stop DIR ..."
dir=$(realpath -m "$dir") # redis-server changes directory before it reads --dir
shift 2
case $cmd in
setup)
	stop_all "$dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	for prog in redis-server redis-cli; do
		if ! command -v "$prog" >/dev/null; then
			echo "$prog not installed (tools/install-deps.sh)" >"$dir/unavailable"
			exit 0
		fi
	done
	start_cluster "$dir/cluster" 3 && start_standalone "$dir/standalone" ||
		{ stop_all "$dir"; exit 1; }
	echo "servers.sh: cluster $(cat "$dir/cluster/seeds"), standalone $(cat "$dir/standalone/seeds")"
	;;
cleanup | stop) stop_all "$dir" ;;
cluster)
	n=${1:-3}
	shift
	stop_all "$dir"
	rm -rf "$dir" # a node that kept its nodes.conf refuses to join a new cluster
	start_cluster "$dir" "$n" "$@" || { stop_all "$dir"; exit 1; }
	;;
standalone)
	stop_all "$dir"
	rm -rf "$dir"
	start_standalone "$dir" "$@" || { stop_all "$dir"; exit 1; } ;;
*) die "unknown command $cmd" ;;
esac

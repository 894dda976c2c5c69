#!/usr/bin/env bash
# Start/stop a local single-node Apache Kafka broker (KRaft, broker+controller)
# for geosentry's development and CI runs. No Docker: the broker's jars come
# from Maven Central through pom.xml beside this script and run on Java 17+.
#
#   broker.sh start    start (or reuse) the broker; last stdout line is the
#                      bootstrap address, e.g. 127.0.0.1:39092
#   broker.sh stop     stop it (safe when nothing runs)
#   broker.sh status   print the address and exit 0 if it serves, else exit 1
#   broker.sh address  print the address if it serves, else exit 1
#   broker.sh fetch    only download the jars into the cache
#   broker.sh kill     SIGKILL the broker, keeping its data, config and port
#   broker.sh restart  start a killed broker again: same port, same data
#   broker.sh pause    SIGSTOP it (sockets stay open, nothing answers); resume: SIGCONT
#
#   broker.sh start --secure   a broker with TLS, SASL/SCRAM and ACLs instead (see
#                      "Secure broker" in README.md): a CA and broker/client certificates
#                      generated at start, SCRAM users admin + $GEOSENTRY_KAFKA_USERS with
#                      random passwords, StandardAuthorizer (admin is the super user). Its
#                      own state dir ($GEOSENTRY_KAFKA_HOME/secure unless
#                      GEOSENTRY_KAFKA_STATE is set); pass --secure to the other commands too
#                      when relying on that default. Prints where the client files are, then
#                      the bootstrap address (last line).
#   broker.sh acl [--secure] USER:OPERATION:RESOURCE ...
#                      allow USER an operation (READ, WRITE, DESCRIBE, CREATE, ALL, ...) on
#                      topic:NAME, group:NAME or cluster (NAME ending in * = prefix), as admin
#
# Environment (all optional):
#   GEOSENTRY_KAFKA_HOME   cache root, default $HOME/.cache/geosentry/kafka;
#                          jars go to $GEOSENTRY_KAFKA_HOME/lib (shared by clones)
#   GEOSENTRY_KAFKA_STATE  state dir (config, data, logs, pid),
#                          default $GEOSENTRY_KAFKA_HOME/run (--secure: .../secure)
#   GEOSENTRY_KAFKA_USERS  --secure: SCRAM users besides admin, default "geosentry public"
#   GEOSENTRY_KAFKA_PORT   PLAINTEXT (client) port, default: a free port
#   GEOSENTRY_KAFKA_CONTROLLER_PORT  controller port, default: a free port
#   GEOSENTRY_KAFKA_START_TIMEOUT    seconds to wait for readiness, default 60
#   GEOSENTRY_KAFKA_HEAP   JVM max heap, default 512m
#   JAVA_HOME / JAVA       java to run (default: java on PATH)
#   MVN                    maven command (default: mvn)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME="${GEOSENTRY_KAFKA_HOME:-${HOME:-/tmp}/.cache/geosentry/kafka}"
LIB_DIR="$KAFKA_HOME/lib"
COMMAND="${1:-}"
[[ $# -gt 0 ]] && shift
SECURE=0
if [[ "${1:-}" == "--secure" ]]; then SECURE=1; shift; fi
if ((SECURE)); then
  STATE_DIR="${GEOSENTRY_KAFKA_STATE:-$KAFKA_HOME/secure}"
else
  STATE_DIR="${GEOSENTRY_KAFKA_STATE:-$KAFKA_HOME/run}"
fi
PID_FILE="$STATE_DIR/broker.pid"
ADDR_FILE="$STATE_DIR/bootstrap"
CONFIG_FILE="$STATE_DIR/server.properties"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
OUT_FILE="$STATE_DIR/broker.out"
START_TIMEOUT="${GEOSENTRY_KAFKA_START_TIMEOUT:-60}"
HEAP="${GEOSENTRY_KAFKA_HEAP:-512m}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA:-}" ]]; then
  :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi
# The marker written after a complete jar download records the pom it came
# from, so editing pom.xml (e.g. a new Kafka version) refetches the jars.
MARKER="$LIB_DIR/.geosentry-complete"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

pom_digest() {
  if have sha256sum; then
    sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1
  else
    cksum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1
  fi
}

# Serialise start/stop between concurrent callers (e.g. two clones).
lock() {
  mkdir -p "$KAFKA_HOME"
  if have flock; then
    exec 9>"$KAFKA_HOME/.lock"
    flock -w 300 9 || die "timed out waiting for $KAFKA_HOME/.lock"
  fi
}

# ---------------------------------------------------------------- jars ----

fetch_jars() {
  local digest
  digest="$(pom_digest)"
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$digest" ]]; then
    return 0
  fi
  have "$MVN" || die "maven ('$MVN') is needed to fetch the Kafka jars once"
  log "fetching Kafka jars into $LIB_DIR (once) ..."
  local tmp="$KAFKA_HOME/lib.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! "$MVN" -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "maven could not fetch the Kafka jars (see output above)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka jar was fetched"; }
  printf '%s\n' "$digest" >"$tmp/.geosentry-complete"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  log "jars ready: $(ls "$LIB_DIR"/*.jar | wc -l) files"
}

# ------------------------------------------------------------- helpers ----

# tcp_open PORT: exit 0 if 127.0.0.1:PORT accepts a TCP connection.
tcp_open() {
  local port="$1"
  if have python3; then
    python3 -c 'import socket,sys
s=socket.socket(); s.settimeout(2)
try: s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)
finally: s.close()' "$port" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# free_ports N: print N distinct currently free TCP ports on 127.0.0.1.
free_ports() {
  local n="$1"
  if have python3; then
    python3 -c 'import socket,sys
socks=[]
for _ in range(int(sys.argv[1])):
    s=socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()' "$n"
  else
    local out=() p
    while ((${#out[@]} < n)); do
      p=$((20000 + RANDOM % 30000))
      if ! tcp_open "$p" && [[ " ${out[*]:-} " != *" $p "* ]]; then out+=("$p"); fi
    done
    echo "${out[*]}"
  fi
}

# The pid in PID_FILE, if that process is alive and is our broker.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    # Guard against pid reuse: the process must be kafka.Kafka on our config.
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmd" == *kafka.Kafka*"$CONFIG_FILE"* ]] || return 1
  fi
  echo "$pid"
}

# The address if our broker runs and accepts connections.
serving_address() {
  broker_pid >/dev/null || return 1
  [[ -f "$ADDR_FILE" ]] || return 1
  local addr
  addr="$(cat "$ADDR_FILE")"
  tcp_open "${addr##*:}" || return 1
  echo "$addr"
}

random_cluster_id() {
  # Kafka cluster ids are 16 random bytes, base64url without padding (22
  # chars). Avoid a leading '-', which the CLI would take for an option.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

show_logs() {
  if [[ -s "$LOG_DIR/server.log" ]]; then
    log "last 50 lines of $LOG_DIR/server.log:"
    tail -n 50 "$LOG_DIR/server.log" >&2
  fi
  if [[ -s "$OUT_FILE" ]]; then
    log "last 50 lines of $OUT_FILE:"
    tail -n 50 "$OUT_FILE" >&2
  fi
}

java_opts() {
  JAVA_OPTS=(
    "-Xmx$HEAP" -Xms64m
    -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2.properties"
    "-Dkafka.logs.dir=$LOG_DIR"
  )
}

write_config() {
  local port="$1" cport="$2"
  cat >"$CONFIG_FILE" <<EOF
# Written by geosentry deploy/kafka/broker.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# Single node: every replication factor and min ISR is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# Small footprint for a 512 MiB heap and a throw-away data dir.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=8388608
log.segment.bytes=16777216
offsets.topic.segment.bytes=16777216
transaction.state.log.segment.bytes=16777216
log.retention.hours=24
EOF
}

# ------------------------------------------------------------ commands ----

# launch_broker PORT: run kafka.Kafka on the config and data in STATE_DIR, wait until ready.
launch_broker() {
  local port="$1"
  # bash -c writes its own pid and then execs java, so the pid is java's.
  # setsid detaches the broker from our session and terminal.
  local detach=()
  if have setsid; then detach=(setsid); fi
  "${detach[@]}" nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" "${JAVA_OPTS[@]}" -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG_FILE" \
    </dev/null >"$OUT_FILE" 2>&1 9>&- &
  echo "127.0.0.1:$port" >"$ADDR_FILE"

  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while ((SECONDS < deadline)); do
    if [[ -z "$pid" && -s "$PID_FILE" ]]; then pid="$(cat "$PID_FILE")"; fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      show_logs
      rm -f "$PID_FILE" "$ADDR_FILE"
      die "the broker exited during start-up"
    fi
    # The client port opens once the broker is up; the log line confirms that
    # start-up completed (metadata caught up, request handling enabled).
    if [[ -n "$pid" ]] && tcp_open "$port" &&
       grep -q 'Kafka Server started' "$LOG_DIR/server.log" 2>/dev/null; then
      log "broker ready (pid $pid)"
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  show_logs
  stop_broker
  die "the broker did not become ready within ${START_TIMEOUT}s"
}


cmd_start() {
  lock
  local addr
  if addr="$(serving_address)"; then
    [[ ! -f "$SECURE_MARK" ]] || die "a secure broker runs in $STATE_DIR; stop it first"
    log "broker already running (pid $(broker_pid))"
    echo "$addr"
    return 0
  fi
  if broker_pid >/dev/null; then
    log "broker process exists but does not serve; restarting it"
    stop_broker
  fi

  fetch_jars
  have "$JAVA" || die "java ('$JAVA') not found; Kafka needs Java 17+"

  local port cport ports
  ports="$(free_ports 2)"
  port="${GEOSENTRY_KAFKA_PORT:-${ports%% *}}"
  cport="${GEOSENTRY_KAFKA_CONTROLLER_PORT:-${ports##* }}"
  [[ "$port" != "$cport" ]] || cport="${ports%% *}"
  if tcp_open "$port"; then die "port $port is already in use"; fi
  if tcp_open "$cport"; then die "controller port $cport is already in use"; fi

  # Fresh state on every start: a reused log dir fails "already formatted".
  mkdir -p "$STATE_DIR"
  rm -rf "$DATA_DIR" "$LOG_DIR"
  rm -f "$PID_FILE" "$ADDR_FILE" "$OUT_FILE" "$SECURE_MARK"
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  write_config "$port" "$cport"
  java_opts

  local cluster_id
  cluster_id="$(random_cluster_id)"
  log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id)"
  if ! "$JAVA" "${JAVA_OPTS[@]}" -cp "$LIB_DIR/*" kafka.tools.StorageTool \
        format -t "$cluster_id" -c "$CONFIG_FILE" >"$STATE_DIR/format.out" 2>&1; then
    cat "$STATE_DIR/format.out" >&2
    show_logs
    die "formatting the storage failed"
  fi

  log "starting Kafka on 127.0.0.1:$port (controller $cport); logs in $LOG_DIR"
  launch_broker "$port"
}

stop_broker() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE" "$ADDR_FILE"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker did not stop within 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$PID_FILE" "$ADDR_FILE"
  log "broker stopped"
}

cmd_stop() {
  lock
  if ! broker_pid >/dev/null; then
    rm -f "$PID_FILE" "$ADDR_FILE"
    log "no broker running"
    return 0
  fi
  stop_broker
}

# Fault injection for the fault suite: the broker dies or freezes with its data and port kept.
cmd_kill() {
  lock
  local pid
  pid="$(broker_pid)" || die "no broker running"
  log "killing broker (SIGKILL, pid $pid); data and port kept for 'restart'"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PID_FILE"
}

cmd_restart() {
  lock
  if broker_pid >/dev/null; then die "broker still running (pid $(broker_pid))"; fi
  [[ -s "$CONFIG_FILE" && -s "$ADDR_FILE" ]] || die "nothing to restart in $STATE_DIR (start first)"
  local port
  port="$(sed 's/.*://' "$ADDR_FILE")"
  if tcp_open "$port"; then die "port $port is already in use"; fi
  java_opts
  log "restarting Kafka on 127.0.0.1:$port with the data in $DATA_DIR"
  : >"$OUT_FILE"
  # readiness is read from server.log: start it afresh
  mv -f "$LOG_DIR/server.log" "$LOG_DIR/server.log.before-restart" 2>/dev/null || true
  launch_broker "$port"
}

cmd_signal() {  # SIGSTOP / SIGCONT: a broker that hangs without closing its sockets
  local pid
  pid="$(broker_pid)" || die "no broker running"
  kill "-$1" "$pid"
  log "sent SIG$1 to the broker (pid $pid)"
}

cmd_status() {
  local addr
  if addr="$(serving_address)"; then
    echo "$addr"
    return 0
  fi
  log "no broker running"
  return 1
}

cmd_address() {
  local addr
  addr="$(serving_address)" || return 1
  echo "$addr"
}

# shellcheck source=secure.sh
source "$SCRIPT_DIR/secure.sh"

if [[ "$COMMAND" != acl && $# -gt 0 ]]; then
  echo "usage: $0 {start|stop|status|address|fetch|kill|restart|pause|resume} [--secure]" >&2
  exit 2
fi
case "$COMMAND" in
  start) if ((SECURE)); then cmd_start_secure; else cmd_start; fi ;;
  acl) cmd_acl "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  address) cmd_address ;;
  fetch) lock; fetch_jars ;;
  kill) cmd_kill ;;
  restart) cmd_restart ;;
  pause) cmd_signal STOP ;;
  resume) cmd_signal CONT ;;
  *)
    echo "usage: $0 {start|stop|status|address|fetch|kill|restart|pause|resume|acl} [--secure]" >&2
    exit 2
    ;;
esac

# shellcheck shell=bash
# `broker.sh start --secure` and `broker.sh acl`: sourced by broker.sh (uses its variables and
# helpers). Everything secret is generated at start in the state dir (mode 700), never committed:
#
#   $STATE_DIR/tls/ca.pem            the CA clients trust (ca_file)
#   $STATE_DIR/tls/client.pem, .key  a client certificate signed by that CA (mutual TLS)
#   $STATE_DIR/users/NAME.password   the SCRAM (SHA-256 and SHA-512) and PLAIN password of NAME
#   $STATE_DIR/NAME.toml             a geosentry [kafka] section for NAME (--config)
#   $STATE_DIR/admin.properties      Java client settings of the super user (used by `acl`)
#
# Listener SASL_SSL on 127.0.0.1 (certificate for IP 127.0.0.1 and DNS localhost; client
# certificates requested, checked against the CA when given), mechanisms SCRAM-SHA-256,
# SCRAM-SHA-512 and PLAIN; StandardAuthorizer with allow.everyone.if.no.acl.found=false: a
# user can do only what an ACL allows. Super users: admin, and ANONYMOUS, which is the
# principal of the PLAINTEXT controller listener (KRaft broker-to-controller requests on
# 127.0.0.1; that listener serves controller requests only, never clients' produce or fetch).

SECURE_MARK="$STATE_DIR/secure"
TLS_DIR="$STATE_DIR/tls"
USERS_DIR="$STATE_DIR/users"

random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

make_tls() {
  local storepass="$1"
  have openssl || die "openssl is needed for 'start --secure'"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=geosentry dev CA" \
      -keyout ca.key -out ca.pem >/dev/null 2>&1
    cat >san.ext <<EOF
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
EOF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key \
      -out broker.csr >/dev/null 2>&1
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile san.ext -out broker.pem >/dev/null 2>&1
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -passout "pass:$storepass" -out broker.p12 >/dev/null 2>&1
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=geosentry-client" -keyout client.key \
      -out client.csr >/dev/null 2>&1
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile client.ext -out client.pem >/dev/null 2>&1
    rm -f ./*.csr ./*.ext ca.srl
  ) || die "generating the TLS certificates failed"
  [[ -s "$TLS_DIR/broker.p12" && -s "$TLS_DIR/client.pem" ]] || die "openssl made no keystore"
}

# write_secure_config PORT CPORT STOREPASS: server.properties of the secure broker.
write_secure_config() {
  local port="$1" cport="$2" storepass="$3" admin_pw plain_users="" u
  admin_pw="$(cat "$USERS_DIR/admin.password")"
  for u in "${SECURE_USERS[@]}"; do
    plain_users+=" user_$u=\"$(cat "$USERS_DIR/$u.password")\""
  done
  write_config "$port" "$cport"
  # replace the PLAINTEXT listener lines of the common config with the secure ones
  local tmp="$CONFIG_FILE.tmp"
  grep -v -e '^listeners=' -e '^advertised.listeners=' -e '^inter.broker.listener.name=' \
    -e '^listener.security.protocol.map=' "$CONFIG_FILE" >"$tmp"
  cat >>"$tmp" <<EOF

# --- secure mode (broker.sh start --secure) ---
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_pw";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw"$plain_users;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$storepass
ssl.key.password=$storepass
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=requested
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS
EOF
  mv -f "$tmp" "$CONFIG_FILE"
}

write_client_files() {
  local addr="$1" u
  cat >"$STATE_DIR/admin.properties" <<EOF
bootstrap.servers=$addr
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$USERS_DIR/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
  for u in "${SECURE_USERS[@]}"; do
    cat >"$STATE_DIR/$u.toml" <<EOF
# geosentry --config for user $u of the secure dev broker at $addr (no secret in this file)
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
username = "$u"
password_file = "$USERS_DIR/$u.password"
ca_file = "$TLS_DIR/ca.pem"
EOF
  done
}

cmd_start_secure() {
  lock
  local addr
  if addr="$(serving_address)"; then
    [[ -f "$SECURE_MARK" ]] || die "a plain broker runs in $STATE_DIR; stop it first"
    log "secure broker already running (pid $(broker_pid))"
    print_secure_paths
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

  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  rm -rf "$DATA_DIR" "$LOG_DIR" "$TLS_DIR" "$USERS_DIR"
  rm -f "$PID_FILE" "$ADDR_FILE" "$OUT_FILE" "$STATE_DIR"/*.toml "$STATE_DIR/admin.properties"
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$USERS_DIR"
  umask 077

  read -r -a SECURE_USERS <<<"admin ${GEOSENTRY_KAFKA_USERS-geosentry public}"
  local u scram=()
  for u in "${SECURE_USERS[@]}"; do
    [[ "$u" =~ ^[A-Za-z0-9_.-]+$ ]] || die "user name '$u': letters, digits, _ . - only"
    random_secret >"$USERS_DIR/$u.password"
    # passwords are random base64url (no ',', ']' or quotes to escape)
    scram+=(--add-scram "SCRAM-SHA-256=[name=$u,password=$(cat "$USERS_DIR/$u.password")]"
            --add-scram "SCRAM-SHA-512=[name=$u,password=$(cat "$USERS_DIR/$u.password")]")
  done
  local storepass
  storepass="$(random_secret)"
  log "generating a CA, broker and client certificates in $TLS_DIR"
  make_tls "$storepass"
  write_secure_config "$port" "$cport" "$storepass"
  : >"$SECURE_MARK"
  java_opts

  local cluster_id
  cluster_id="$(random_cluster_id)"
  log "formatting KRaft storage in $DATA_DIR with SCRAM users ${SECURE_USERS[*]}"
  if ! "$JAVA" "${JAVA_OPTS[@]}" -cp "$LIB_DIR/*" kafka.tools.StorageTool \
        format -t "$cluster_id" -c "$CONFIG_FILE" "${scram[@]}" \
        >"$STATE_DIR/format.out" 2>&1; then
    cat "$STATE_DIR/format.out" >&2
    die "formatting the storage failed"
  fi
  write_client_files "127.0.0.1:$port"
  log "starting secure Kafka (SASL_SSL) on 127.0.0.1:$port (controller $cport); logs in $LOG_DIR"
  launch_broker "$port" >/dev/null
  print_secure_paths
  echo "127.0.0.1:$port"
}

print_secure_paths() {
  echo "state: $STATE_DIR"
  echo "ca: $TLS_DIR/ca.pem"
  echo "client certificate: $TLS_DIR/client.pem $TLS_DIR/client.key"
  echo "users: $(cd "$USERS_DIR" && ls -- *.password | sed 's/\.password$//' | tr '\n' ' ')(passwords in $USERS_DIR/NAME.password; configs $STATE_DIR/NAME.toml)"
}

# acl USER:OPERATION:RESOURCE ...: create allow ACLs as the super user (Admin API, through
# the single-file Java program Acls.java beside this script: Kafka 4's AclCommand lives in the
# kafka-tools jar, which the broker's classpath does not have).
cmd_acl() {
  [[ -f "$SECURE_MARK" && -s "$STATE_DIR/admin.properties" ]] \
    || die "no secure broker state in $STATE_DIR (start --secure first)"
  (($# > 0)) || die "usage: broker.sh acl [--secure] USER:OPERATION:topic:NAME|group:NAME|cluster ..."
  "$JAVA" -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties" \
    "-Dkafka.logs.dir=$LOG_DIR" "$SCRIPT_DIR/Acls.java" "$STATE_DIR/admin.properties" "$@" \
    || die "creating the ACLs failed"
}

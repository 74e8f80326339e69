#!/bin/sh
# docker-compose's Kafka (apache/kafka image, KRaft), one node of the cluster per container, each a
# broker and a controller: started as Vigil's secure embedded stack starts its own
# (infra/stack/kafka.py). Clients only over SASL_SSL (SCRAM-SHA-512, the certificate from `vigil
# stack compose-tls`), Kafka's authorizer with no access without an ACL; the controllers talk to
# each other over TLS with client certificates (mutual TLS: a certificate of compose's CA gets in,
# and only the Kafka certificate's principal, KAFKA_CONTROLLER_PRINCIPAL, is their super user). The
# brokers' super user `vigil-broker` (its password in the file VIGIL_KAFKA_ADMIN_PASSWORD_FILE
# names, compose's secret kafka_admin_password; or in VIGIL_KAFKA_ADMIN_PASSWORD) is created when the
# storage is formatted, the first time; compose's one-shot kafka-access service then writes the
# role users, ACLs and quotas (`vigil stack access --apply`). The cluster: KAFKA_NODE_ID,
# KAFKA_CONTROLLER_VOTERS (id@host:port, every node's) and KAFKA_CLUSTER_ID (the same on every
# node); by default a cluster of one. Topics are replicated to min(3, nodes), written to at least 2
# of 3. POSIX sh; every path and port can be moved by the environment
# (tests/integration/test_compose_kafka.py runs this script on the same Kafka's jars).
set -eu

fail() {
    echo "kafka-start: $*" >&2
    exit 2
}

password=${VIGIL_KAFKA_ADMIN_PASSWORD:-}
password_file=${VIGIL_KAFKA_ADMIN_PASSWORD_FILE:-}
if [ -n "$password_file" ]; then
    [ -z "$password" ] || fail "both VIGIL_KAFKA_ADMIN_PASSWORD and VIGIL_KAFKA_ADMIN_PASSWORD_FILE are set: keep one"
    [ -r "$password_file" ] || fail "VIGIL_KAFKA_ADMIN_PASSWORD_FILE names $password_file, which this user ($(id -u)) cannot read: write it with \`vigil stack compose-secrets\`, then \`sudo chown 10001:1000\` it"
    password=$(cat "$password_file")  # the secret without its line end
fi
case $password in
    "" | *[!A-Za-z0-9._~+/-]*) fail "VIGIL_KAFKA_ADMIN_PASSWORD needs at least 16 letters, digits or ._~+/- (e.g. \$(openssl rand -hex 24))" ;;
esac
[ "${#password}" -ge 16 ] || fail "VIGIL_KAFKA_ADMIN_PASSWORD needs at least 16 letters, digits or ._~+/- (e.g. \$(openssl rand -hex 24))"

bin=${KAFKA_BIN:-/opt/kafka/bin}
data=${KAFKA_DATA_DIR:-/var/lib/kafka/data}
run=${KAFKA_RUN_DIR:-/tmp/vigil-kafka}
broker_pem=${KAFKA_BROKER_PEM:-/run/secrets/kafka_pem}
ca=${KAFKA_CA:-/run/secrets/tls_ca}
host=${KAFKA_ADVERTISED_HOST:-kafka}
listen=${KAFKA_LISTEN_HOST:-}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
partitions=${KAFKA_NUM_PARTITIONS:-12}
node_id=${KAFKA_NODE_ID:-1}
voters=${KAFKA_CONTROLLER_VOTERS:-$node_id@localhost:$controller_port}
cluster_id=${KAFKA_CLUSTER_ID:-}
# who may speak on the controller listener: the CN of compose-tls's kafka.pem, which every node presents
controller_principal=${KAFKA_CONTROLLER_PRINCIPAL:-User:CN=kafka}

for file in "$broker_pem" "$ca"; do
    [ -r "$file" ] || fail "cannot read $file: write it with \`vigil stack compose-tls\`, then \`sudo chown 1000\` its kafka.pem"
done
case $node_id in
    "" | *[!0-9]*) fail "KAFKA_NODE_ID must be a number (this node's, in KAFKA_CONTROLLER_VOTERS)" ;;
esac
case ",$voters," in
    *",$node_id@"*) ;;
    *) fail "KAFKA_CONTROLLER_VOTERS ($voters) does not name this node, KAFKA_NODE_ID=$node_id" ;;
esac
nodes=$(echo "$voters" | tr ',' '\n' | grep -c .)
if [ "$nodes" -ge 3 ]; then
    replicas=3 min_isr=2  # a node may be down and nothing acknowledged is lost
else
    replicas=$nodes min_isr=1
fi
if [ "$nodes" -gt 1 ] && [ -z "$cluster_id" ]; then
    fail "KAFKA_CLUSTER_ID must be set, the same on every node of a cluster of $nodes (e.g. \$(kafka-storage.sh random-uuid))"
fi

umask 077
mkdir -p "$run"
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"vigil-broker\" password=\"$password\";"

cat >"$run/server.properties" <<EOF
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=SASL_SSL://$listen:$port,CONTROLLER://$listen:$controller_port
advertised.listeners=SASL_SSL://$host:$port,CONTROLLER://$host:$controller_port
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
ssl.keystore.type=PEM
ssl.keystore.location=$broker_pem
ssl.truststore.type=PEM
ssl.truststore.location=$ca
ssl.client.auth=none
listener.name.controller.ssl.client.auth=required
ssl.enabled.protocols=TLSv1.3,TLSv1.2
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:vigil-broker;$controller_principal
allow.everyone.if.no.acl.found=false
log.dirs=$data
num.partitions=$partitions
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
EOF

# what the healthcheck signs in with: kafka-broker-api-versions.sh --command-config
cat >"$run/client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$jaas
ssl.truststore.type=PEM
ssl.truststore.location=$ca
EOF

if [ ! -f "$data/meta.properties" ]; then
    # KRaft keeps SCRAM users in its metadata log: the super user exists from the first start
    [ -n "$cluster_id" ] || cluster_id=$("$bin/kafka-storage.sh" random-uuid)
    # the password never on a command line (`ps` shows every process' to every user): printf, a
    # shell builtin, writes the user into a file of the private run folder (umask 077), which the
    # StorageTool reads as "@file" (argparse4j: one argument a line; kafka-storage.sh puts the main
    # class before our arguments, where the JVM's own @argfiles are no longer read)
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=vigil-broker,password=$password]" >"$run/scram.args"
    formatted=0
    "$bin/kafka-storage.sh" format "--cluster-id=$cluster_id" -c "$run/server.properties" \
        "@$run/scram.args" >/dev/null || formatted=$?
    rm -f "$run/scram.args"
    [ "$formatted" -eq 0 ] || fail "formatting $data failed (exit $formatted)"
    touch "$data/.vigil-scram"
elif [ ! -f "$data/.vigil-scram" ]; then
    fail "$data was formatted without Vigil's super user (a PLAINTEXT compose Kafka of before): let the workers catch up, then \`docker compose down\`, \`docker volume rm\` this node's volume and up again"
fi

exec "$bin/kafka-server-start.sh" "$run/server.properties"

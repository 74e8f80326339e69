#!/bin/bash
# deploy/redis/Dockerfile without a Docker engine (its build machine has none): its RUN in a Debian
# bookworm root made by debootstrap (minbase, with the official image's security and updates sources
# and its policy-rc.d), then docker-compose.yml's redis command in it, as its USER, from its WORKDIR,
# with secrets and a certificate from `vigil stack compose-secrets` / `compose-tls`; the healthcheck's
# redis-cli must answer PONG and Vigil's user must write a key that reaches the AOF in /data.
# Needs root, debootstrap and deb.debian.org.   sudo deploy/redis/check-in-chroot.sh [ROOT]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${1:-/tmp/vigil-redis-rootfs}
VIGIL=${VIGIL:-$REPO/.venv/bin/vigil}
PY=${PY:-$REPO/.venv/bin/python}
DOCKERFILE=$REPO/deploy/redis/Dockerfile

[ -x "$ROOT/usr/bin/apt-get" ] || debootstrap --variant=minbase bookworm "$ROOT" http://deb.debian.org/debian
cat > "$ROOT/etc/apt/sources.list" <<'SRC'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d" && chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"  # as Docker writes it
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; umount "$ROOT/proc" 2>/dev/null || true' EXIT

# the Dockerfile's one RUN (continuation lines joined), as `docker build` would run it
run=$(sed -n '/^RUN /,/[^\\]$/p' "$DOCKERFILE" | sed 's/^RUN //; s/\\$//' | tr '\n' ' ')
if ! chroot "$ROOT" id -u redis >/dev/null 2>&1; then
  chroot "$ROOT" /bin/sh -c "$run"
fi
user=$(sed -n 's/^USER //p' "$DOCKERFILE"); workdir=$(sed -n 's/^WORKDIR //p' "$DOCKERFILE")
echo "image user: $(chroot "$ROOT" id "$user"); $(chroot "$ROOT" redis-server --version)"
echo "package: $(chroot "$ROOT" dpkg-query -W redis-server)"

# compose's secrets, as compose mounts them (owned by the image's user)
tmp=$(mktemp -d); mkdir -p "$ROOT/run/secrets" "$tmp/secrets" "$tmp/tls"
"$VIGIL" stack compose-secrets --out "$tmp/secrets" >/dev/null
"$VIGIL" stack compose-tls --out "$tmp/tls" >/dev/null
cp "$tmp/secrets/redis-users.conf" "$ROOT/run/secrets/redis_users"
cp "$tmp/tls/redis.pem" "$ROOT/run/secrets/redis_pem"
cp "$tmp/tls/ca.pem" "$ROOT/run/secrets/tls_ca"
chown "$(chroot "$ROOT" id -u "$user")" "$ROOT/run/secrets/redis_users" "$ROOT/run/secrets/redis_pem"
chmod 600 "$ROOT/run/secrets/redis_users" "$ROOT/run/secrets/redis_pem"

# compose's command, from its file
mapfile -t cmd < <("$PY" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["services"]["redis"]["command"]))' "$REPO/docker-compose.yml")
chroot --userspec="$user:$user" "$ROOT" /bin/sh -c "cd $workdir && exec \"\$@\"" sh "${cmd[@]}" > "$tmp/redis.log" 2>&1 &
server=$!  # chroot and sh exec: redis-server's pid
for _ in $(seq 50); do
  chroot "$ROOT" redis-cli --tls --cacert /run/secrets/tls_ca -h localhost ping 2>/dev/null | grep -q PONG && break
  sleep 0.2
done
health=$(chroot "$ROOT" redis-cli --tls --cacert /run/secrets/tls_ca -h localhost ping)
echo "healthcheck: $health"
[ "$health" = PONG ] || { cat "$tmp/redis.log"; exit 1; }
password=$(cat "$tmp/secrets/redis_password")
"$PY" - "$password" "$ROOT/run/secrets/tls_ca" <<'PYEOF'
import sys, redis
client = redis.Redis(host="localhost", port=6379, username="vigil", password=sys.argv[1], ssl=True, ssl_ca_certs=sys.argv[2])
client.set("vigil:chroot-check", "1")
print("vigil user:", client.get("vigil:chroot-check"), "; FLUSHALL:", end=" ")
try:
    client.flushall()
    print("allowed (wrong)")
except redis.exceptions.NoPermissionError:
    print("refused")
PYEOF
sleep 1.5  # appendfsync everysec
stat -c '%n uid %u mode %a' "$ROOT$workdir" "$ROOT$workdir"/appendonlydir/*
echo "the key in the AOF: $(grep -c "vigil:chroot-check" "$ROOT$workdir"/appendonlydir/*.incr.aof)"
rm -rf "$tmp"

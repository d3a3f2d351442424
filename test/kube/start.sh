#!/bin/sh
# Starts etcd, kube-apiserver and kube-controller-manager on loopback with a
# PKI made for the occasion, all under DIR, and writes DIR/admin.kubeconfig
# (system:masters). Waits until the API server is ready. Stop with stop.sh DIR.
#
#   test/kube/start.sh DIR
#
# Ports: ETCD_PORT (default 2379; the peer port is ETCD_PORT+1) and
# APISERVER_PORT (default 6443). EXTRA_SANS: more addresses for the serving
# certificate (comma-separated IPs), for nodes that reach the server over a
# bridge. The binaries come from build.sh (built when missing).
set -eu
DIR=$1
here=$(cd "$(dirname "$0")" && pwd)
BIN=$("$here/build.sh")
ETCD_PORT=${ETCD_PORT:-2379}
APISERVER_PORT=${APISERVER_PORT:-6443}
mkdir -p "$DIR/pki"
DIR=$(cd "$DIR" && pwd)
P=$DIR/pki

# PKI: a CA, the serving certificate, an admin and a controller-manager
# client certificate, and the service-account key pair.
sans="IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1"
for ip in $(echo "${EXTRA_SANS:-}" | tr ',' ' '); do sans="$sans,IP:$ip"; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj /CN=hoist-test-ca -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
cert() { # name subject [extensions]
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
		-keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null
	printf '%s\n' "${3:-extendedKeyUsage=clientAuth}" > "$P/$1.ext"
	openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 30 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
cert apiserver /CN=kube-apiserver "subjectAltName=$sans
extendedKeyUsage=serverAuth"
cert admin "/O=system:masters/CN=admin"
cert controller-manager /CN=system:kube-controller-manager
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null

# Credentials inline: the kubeconfig works wherever it is copied.
b64() { base64 -w0 < "$1"; }
kubeconfig() { # file user
	cat > "$1" <<EOK
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$P/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$P/$2.crt")
    client-key-data: $(b64 "$P/$2.key")
contexts:
- name: test
  context: {cluster: test, user: $2}
current-context: test
EOK
}
kubeconfig "$DIR/admin.kubeconfig" admin
kubeconfig "$DIR/controller-manager.kubeconfig" controller-manager
chmod 600 "$DIR"/*.kubeconfig

start() { # name command...
	name=$1; shift
	setsid "$@" > "$DIR/$name.log" 2>&1 < /dev/null &
	echo $! > "$DIR/$name.pid"
}
start etcd "$BIN/etcd" --data-dir "$DIR/etcd" --unsafe-no-fsync \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
	--initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" --name default
i=0
until curl -sf "http://127.0.0.1:$ETCD_PORT/health" > /dev/null; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 "$(cat "$DIR/etcd.pid")" 2>/dev/null; then
		echo "etcd did not start (a port taken?); its log ends with:" >&2
		tail -5 "$DIR/etcd.log" >&2
		"$here/stop.sh" "$DIR"
		exit 1
	fi
	sleep 0.1
done
# A loopback advertise address is refused by the endpoint reconciler; with
# no reconciler it is accepted.
start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" --advertise-address 127.0.0.1 \
	--endpoint-reconciler-type none \
	--client-ca-file "$P/ca.crt" --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
	--service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
	--service-account-issuer https://kubernetes.default.svc \
	--service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC
i=0
until curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" \
	"https://127.0.0.1:$APISERVER_PORT/readyz" > /dev/null; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$(cat "$DIR/kube-apiserver.pid")" 2>/dev/null; then
		echo "kube-apiserver is not ready; its log ends with:" >&2
		tail -20 "$DIR/kube-apiserver.log" >&2
		tail -5 "$DIR/etcd.log" >&2
		"$here/stop.sh" "$DIR"
		exit 1
	fi
	sleep 0.1
done
# Without the controller manager no ServiceAccount appears and namespace
# deletion never ends.
start kube-controller-manager "$BIN/kube-controller-manager" \
	--kubeconfig "$DIR/controller-manager.kubeconfig" --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
	--service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
	--cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
	--use-service-account-credentials=false --leader-elect=false --bind-address 127.0.0.1 --secure-port 0
echo "$DIR/admin.kubeconfig"

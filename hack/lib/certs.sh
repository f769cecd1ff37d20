# Certificates for the local cluster, generated with openssl into $PKI (sourced by cluster-up.sh).
# shellcheck shell=bash

# issue NAME SUBJECT USAGE [SAN]: a key and a cert signed by the cluster CA; USAGE is clientAuth/serverAuth.
issue() {
  local name=$1 subject=$2 usage=$3 san=${4:-}
  local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$usage"
  [[ -n $san ]] && ext+=$'\n'"subjectAltName=$san"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile <(printf '%s\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

generate_pki() {
  mkdir -p "$PKI" && chmod 700 "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=marina-cluster-ca" -days 3650 -out "$PKI/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  local dns="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  dns+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  issue kube-apiserver "/CN=kube-apiserver" serverAuth "$dns,IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1"
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  issue admin "/O=system:masters/CN=marina-admin" clientAuth
  issue kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue kube-scheduler "/CN=system:kube-scheduler" clientAuth
  issue kube-proxy "/CN=system:kube-proxy" clientAuth
  issue kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  issue kubelet-server "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# write_kubeconfig FILE CERT_NAME: a kubeconfig that authenticates with the named client certificate.
write_kubeconfig() {
  local file=$1 name=$2
  b64() { base64 -w0 <"$1"; }
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: marina
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(b64 "$PKI/$name.crt")
    client-key-data: $(b64 "$PKI/$name.key")
contexts:
- name: marina
  context: {cluster: marina, user: $name}
current-context: marina
KUBECONFIG
  chmod 600 "$file"
}

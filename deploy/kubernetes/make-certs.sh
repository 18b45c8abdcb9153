#!/usr/bin/env bash
# Make the admission webhook's TLS material for a cluster without cert-manager: a self-signed
# CA and a serving certificate for the webhook Service's DNS names, signed by it (openssl).
#
#   deploy/kubernetes/make-certs.sh [--out DIR] [--namespace NS] [--service NAME] [--days N]
#   kubectl apply -k deploy/kubernetes/self-signed
#
# Writes into DIR (default: self-signed/generated beside this script):
#   ca.key, ca.crt            the CA (kept: a second run reuses it and issues a new serving
#                             certificate, so the webhooks' caBundle stays valid)
#   tls.key, tls.crt          the serving certificate, SAN = NAME.NS.svc, NAME.NS.svc.cluster.local
#   secret.yaml               Secret NS/NAME-tls (type kubernetes.io/tls) that the Deployment mounts
#   ca-bundle.patch.yaml      JSON patch setting clientConfig.caBundle of the webhooks to the CA
# The private keys never leave DIR except in secret.yaml (the serving key): keep DIR out of
# version control.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/self-signed/generated"
namespace=oci-model-system
service=oci-model-admission
days=365

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a name}"; shift 2 ;;
    --service) service="${2:?--service needs a name}"; shift 2 ;;
    --days) days="${2:?--days needs a number}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "make-certs.sh: unknown argument: $1" >&2; usage ;;
  esac
done
case "$days" in ''|*[!0-9]*) echo "make-certs.sh: --days must be a number of days, got: $days" >&2; exit 2 ;; esac
command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
cd "$out"

dns1="$service.$namespace.svc"
dns2="$service.$namespace.svc.cluster.local"

if [ -s ca.key ] && [ -s ca.crt ]; then
  echo "make-certs.sh: reusing the CA in $out" >&2
else
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  openssl req -x509 -new -sha256 -key ca.key -days 3650 \
    -subj "/CN=$service-ca" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt
fi

openssl ecparam -name prime256v1 -genkey -noout -out tls.key.new
openssl req -new -sha256 -key tls.key.new -subj "/CN=$dns1" -out tls.csr
cat > tls.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$dns1,DNS:$dns2
EXT
openssl x509 -req -sha256 -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -days "$days" -extfile tls.ext -out tls.crt.new 2>/dev/null
openssl verify -CAfile ca.crt -verify_hostname "$dns1" tls.crt.new >/dev/null
mv tls.key.new tls.key
mv tls.crt.new tls.crt
rm -f tls.csr tls.ext ca.srl

b64() { base64 -w0 < "$1"; }
cat > secret.yaml <<YAML
# Made by make-certs.sh: the webhook's serving certificate and key.
apiVersion: v1
kind: Secret
metadata:
  name: $service-tls
  namespace: $namespace
  labels:
    app.kubernetes.io/name: oci-model-admission
type: kubernetes.io/tls
data:
  tls.crt: $(b64 tls.crt)
  tls.key: $(b64 tls.key)
  ca.crt: $(b64 ca.crt)
YAML
cat > ca-bundle.patch.yaml <<YAML
# Made by make-certs.sh: the API server trusts the webhook's certificate through this CA.
- op: add
  path: /webhooks/0/clientConfig/caBundle
  value: $(b64 ca.crt)
YAML
chmod 644 ca.crt tls.crt ca-bundle.patch.yaml
echo "make-certs.sh: wrote $out (serving certificate for $dns1, $dns2, valid $days days)" >&2

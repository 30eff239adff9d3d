# Test certificates, sourced by ci/pg.sh and ci/rabbitmq.sh.
#   tls_make_certs DIR OWNER  makes, with openssl, a throwaway CA (DIR/ca.pem) and a server
#                             certificate it signed for the IP address 127.0.0.1 only
#                             (DIR/server.pem, key DIR/server.key, mode 0600, owned by OWNER
#                             when given), valid for two days. Tests connect to 127.0.0.1 with
#                             DIR/ca.pem as their trust; a name other than 127.0.0.1 fails the
#                             name check, which the tests use as well.

tls_make_certs() {
  local dir=$1 owner=${2:-}
  mkdir -p "$dir"
  (
    set -e
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=oxstack test CA" -keyout ca.key -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
    rm -f server.csr server.ext ca.srl ca.key
    chmod 600 server.key
  ) >"$dir/openssl.log" 2>&1 || {
    echo "tls: openssl could not make the test certificates:" >&2
    cat "$dir/openssl.log" >&2
    return 1
  }
  if [ -n "$owner" ]; then
    chown "$owner" "$dir" "$dir/server.key" "$dir/server.pem"
  fi
}

#!/bin/sh
# A test exec credential plugin. $1 picks the behaviour, $2 the apiVersion
# to answer with. Each run appends a line to $KF_EXEC_COUNT_FILE (when set)
# and the token carries the run number, so tests see caching and refresh;
# KUBERNETES_EXEC_INFO is saved to $KF_EXEC_INFO_FILE (when set).
# $KF_EXEC_TTL is the credential's lifetime in seconds (default 3600).
mode=${1:-token}
api=${2:-client.authentication.k8s.io/v1}
here=$(dirname "$0")
n=0
if [ -n "$KF_EXEC_COUNT_FILE" ]; then
	echo run >>"$KF_EXEC_COUNT_FILE"
	n=$(wc -l <"$KF_EXEC_COUNT_FILE" | tr -d ' ')
fi
if [ -n "$KF_EXEC_INFO_FILE" ]; then
	printf '%s' "$KUBERNETES_EXEC_INFO" >"$KF_EXEC_INFO_FILE"
fi
ttl=${KF_EXEC_TTL:-3600}
exp=$(date -u -d "@$(($(date +%s) + ttl))" +%Y-%m-%dT%H:%M:%SZ)
json_pem() { # json_pem FILE: the file as one JSON string body
	awk '{ printf "%s\\n", $0 }' "$1"
}
case "$mode" in
token)
	printf '{"kind":"ExecCredential","apiVersion":"%s","status":' "$api"
	printf '{"token":"exec-token-%s%s","expirationTimestamp":"%s"}}\n' \
		"$n" "${PLUGIN_SUFFIX:-}" "$exp"
	;;
noexpiry)
	printf '{"kind":"ExecCredential","apiVersion":"%s",' "$api"
	printf '"status":{"token":"exec-token-%s"}}\n' "$n"
	;;
cert)
	printf '{"kind":"ExecCredential","apiVersion":"%s","status":{' "$api"
	printf '"clientCertificateData":"%s",' "$(json_pem "$here/certs/client.crt")"
	printf '"clientKeyData":"%s"}}\n' "$(json_pem "$here/certs/client.key")"
	;;
fail)
	echo "some earlier noise" >&2
	echo "error: you must be logged in to the server (run login first)" >&2
	exit 3
	;;
badjson)
	echo '{"kind":"ExecCredential", "status": {'
	;;
wrongkind)
	printf '{"kind":"Pod","apiVersion":"%s","status":{"token":"x"}}\n' "$api"
	;;
badtime)
	printf '{"kind":"ExecCredential","apiVersion":"%s","status":' "$api"
	printf '{"token":"t","expirationTimestamp":"yesterday"}}\n'
	;;
crlf)
	printf '{"kind":"ExecCredential","apiVersion":"%s","status":' "$api"
	printf '{"token":"abc\\r\\nX-Evil: 1"}}\n'
	;;
slow)
	sleep 20 &
	[ -n "$KF_EXEC_CHILD_FILE" ] && echo $! >"$KF_EXEC_CHILD_FILE"
	wait
	;;
big)
	head -c 3000000 /dev/zero | tr '\0' 'a'
	;;
esac

# Sourced by examples/build-example.sh and bench/rebuild.sh (POSIX sh).
#
# standins_start ROOT ADDR DIR: the public images Kubefile.example needs are
# out of reach here (CI, an air gap), so serve generated stand-ins for them
# on ADDR (test/standin) and configure them as registry mirrors in hoist's
# own registries.conf.d under ROOT, as a site mirror would be.
# standins_stop undoes it. HOIST must name the hoist binary.

standins_start() {
	_root=$1 _addr=$2 _dir=$3
	_conf="$_root/config/registries.conf.d/50-example-standins.conf"
	_refs=$("$HOIST" --root "$_root" find-images --format '{{.Ref}}' examples/platform)
	# Built, then run: `go run` would leave its child running when killed.
	go build -tags "containers_image_openpgp exclude_graphdriver_btrfs" -o "$_dir/standin" ./test/standin
	# shellcheck disable=SC2086 # one argument per reference
	"$_dir/standin" --dir "$_dir/registry" --addr "$_addr" $_refs >"$_dir/standin.log" 2>&1 &
	_standin_pid=$!
	_i=0
	until grep -q '^serving on' "$_dir/standin.log"; do
		if ! kill -0 "$_standin_pid" 2>/dev/null || [ "$_i" -gt 600 ]; then
			cat "$_dir/standin.log" >&2
			return 1
		fi
		_i=$((_i + 1))
		sleep 0.5
	done
	mkdir -p "$(dirname "$_conf")"
	: >"$_conf"
	for _host in $(echo "$_refs" | cut -d/ -f1 | sort -u); do
		printf '[[registry]]\nprefix = "%s"\nlocation = "%s"\n[[registry.mirror]]\nlocation = "%s/%s"\ninsecure = true\n\n' \
			"$_host" "$_host" "$_addr" "$(echo "$_host" | tr : _)" >>"$_conf"
	done
}

standins_stop() {
	kill "$_standin_pid" 2>/dev/null || true
	wait "$_standin_pid" 2>/dev/null || true
	rm -f "$_conf"
}

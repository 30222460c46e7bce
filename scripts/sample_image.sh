#!/usr/bin/env bash
# Build the walkthrough's sample image without any image registry.
#
#   scripts/sample_image.sh            build kubeedge-tw/sample-app:1.0 unless it exists
#   scripts/sample_image.sh --force    rebuild it
#
# The image is a root filesystem made from Debian's busybox-static (one static binary and
# its applet links) plus a web page, imported with `docker import`. Its command, /bin/serve,
# runs busybox httpd on $PORT (default 8080) serving /www and exits 0 on SIGTERM, so pods
# stop at once instead of waiting out their grace period. The other examples run their own
# commands (sh, cat, sleep, env) from the same image.
#
# Needs a Docker engine that answers and a static /bin/busybox; as root, a missing
# busybox-static is installed with apt-get. The image name can be changed with
# KUBEEDGE_TW_SAMPLE_IMAGE. Prints the image name on success.
set -euo pipefail

image="${KUBEEDGE_TW_SAMPLE_IMAGE:-kubeedge-tw/sample-app:1.0}"
force=no
case "${1:-}" in
  --force) force=yes ;;
  "") ;;
  *) printf 'scripts/sample_image.sh: unknown argument %s (use --force or nothing)\n' "$1" >&2; exit 2 ;;
esac

die() { printf 'scripts/sample_image.sh: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker command: install the Debian package docker.io"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed): start dockerd"

if [ "$force" = no ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

is_static() { [ -x "$1" ] && ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
busybox=/bin/busybox
if ! is_static "$busybox"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static \
      >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends busybox-static >/dev/null 2>&1; } \
      || die "apt-get install busybox-static failed"
  fi
  is_static "$busybox" || die "$busybox is missing or not static: install the Debian package busybox-static"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh cat echo env grep hostname httpd ls mkdir ps sleep test wget date uname kill true false; do
  ln -s busybox "$root/bin/$applet"
done
cat >"$root/bin/serve" <<'SH'
#!/bin/sh
# Serve /www on $PORT (default 8080); exit 0 on SIGTERM or SIGINT.
trap 'kill "$child" 2>/dev/null; exit 0' TERM INT
httpd -f -p "${PORT:-8080}" -h /www &
child=$!
wait "$child"
SH
chmod 755 "$root/bin/serve"
cat >"$root/www/index.html" <<'HTML'
<!doctype html>
<title>kubeedge-tw sample app</title>
<p>Hello from kubeedge-tw: this page is served by a pod on an edge node.</p>
HTML
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

tar -C "$root" -cf - . \
  | docker import --change 'CMD ["/bin/serve"]' --change 'ENV PATH=/bin' \
      --message "kubeedge-tw sample app (busybox-static)" - "$image" >/dev/null \
  || die "docker import of the sample image failed"
echo "$image"

#!/usr/bin/env bash
# The Debian package, as a Debian user builds one: dpkg-buildpackage over meson (debian/).
#   scripts/deb.sh               builds target/debian/gstreamer1.0-whisperstt_*.deb
#   scripts/deb.sh --round-trip  then installs it, checks gst-inspect-1.0 and a pipeline with
#                                the installed files, purges it and checks nothing is left
#                                (root; puts scripts/setup.sh's meson install back after)
set -euo pipefail
cd "$(dirname "$0")/.."

round_trip=false
case "${1:-}" in
  --round-trip) round_trip=true ;;
  "") ;;
  *) echo "usage: scripts/deb.sh [--round-trip]" >&2; exit 2 ;;
esac
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { printf '== %s\n' "$*" >&2; }

if ! dpkg-query -W -f='${Status}' debhelper 2>/dev/null | grep -q 'ok installed'; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debhelper
fi

out=target/debian
mkdir -p "$out"
say "dpkg-buildpackage -b (meson, cargo)"
# dpkg-buildpackage writes beside the source tree; everything it made is moved into $out.
dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; exit 1; }
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
for f in ../gst-plugin-whisperstt_"$version"_"$arch".{buildinfo,changes} \
         ../gstreamer1.0-whisperstt{,-dbgsym}_"$version"_"$arch".*deb; do
  [ -e "$f" ] && mv -f "$f" "$out/"
done
deb="$out/gstreamer1.0-whisperstt_${version}_${arch}.deb"
say "built $deb"
dpkg-deb --info "$deb" | grep -E '^ (Package|Version|Depends):' >&2
$round_trip || exit 0

purge() {
  dpkg-query -W gstreamer1.0-whisperstt >/dev/null 2>&1 || return 0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq gstreamer1.0-whisperstt >/dev/null
}
# The package and scripts/setup.sh's meson install share the plugin's path: put that back,
# whatever happens.
restore() { as_root meson install -C build --no-rebuild --quiet; }
trap 'purge || true; restore' EXIT
say "installing it"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
mapfile -t files < <(dpkg -L gstreamer1.0-whisperstt | while read -r f; do [ -f "$f" ] && echo "$f"; done)
plugin=$(printf '%s\n' "${files[@]}" | grep '/gstreamer-1.0/libgstwhisperstt.so$')
say "gst-inspect-1.0 finds $plugin"
found=$(env -u GST_PLUGIN_PATH gst-inspect-1.0 whisperstt | awk '$1 == "Filename" {print $2}')
[ "$(realpath "$found")" = "$(realpath "$plugin")" ] || { echo "deb: gst-inspect-1.0 found $found" >&2; exit 1; }
env -u GST_PLUGIN_PATH gst-inspect-1.0 whisperstt | grep -E '^\s+whisper(sink|transcribe):'
say "a pipeline with the installed plugin and /usr/bin/whisperstt-model's models"
/usr/bin/whisperstt-model list | grep -q 'tiny.en'
text=$(env -u GST_PLUGIN_PATH gst-launch-1.0 -m \
  filesrc location=/usr/share/pocketsphinx/test/data/goforward.raw ! \
  rawaudioparse format=pcm pcm-format=s16le sample-rate=16000 num-channels=1 ! \
  whispersink model=tiny.en 2>&1 | grep 'whisperstt-transcript' | grep 'is-final=(boolean)true' |
  grep -io 'go\\ forward' || true)
[ -n "$text" ] || { echo "deb: the installed plugin did not transcribe goforward.raw" >&2; exit 1; }
say "purging it"
purge
left=()
for f in "${files[@]}"; do [ -e "$f" ] && left+=("$f"); done
if dpkg-query -W gstreamer1.0-whisperstt >/dev/null 2>&1 || [ ${#left[@]} -gt 0 ]; then
  echo "deb: left behind after purge: ${left[*]:-its record in the dpkg database}" >&2
  exit 1
fi
say "purged: none of its ${#files[@]} files left"

#!/usr/bin/env bash
# Builds the Debian package of Palisade from this tree: the release configuration in
# build-release/ (-O3, warnings are errors), installed with meson install --destdir into a
# staging root beside the systemd unit and maintainer scripts from packaging/, then dpkg-deb.
# Depends are what dpkg-shlibdeps finds the installed binaries need. Writes
# build-release/palisade_VERSION_ARCH.deb and prints its path last. Needs dpkg-dev
# (scripts/setup-debian.sh installs it). Maintainer: $DEBFULLNAME <$DEBEMAIL>, else git's user.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-release
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dwerror=true --prefix=/usr
fi
# What the package holds; the tests and benchmarks stay out of this build (nearly a third of it).
ninja -C "$build" daemon/palisaded cli/palisadectl

# Staged as debhelper would (debian/palisade), with a debian/control beside it for dpkg-shlibdeps.
stage=$PWD/$build/deb
root=$stage/debian/palisade
rm -rf "$stage"
install -d -m 0755 "$root"
meson install -C "$build" --no-rebuild --strip --quiet --destdir "$root"
install -D -m 0644 packaging/systemd/palisaded@.service "$root/lib/systemd/system/palisaded@.service"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/palisade/copyright"
install -D -m 0644 README.md "$root/usr/share/doc/palisade/README.md"

# dpkg-shlibdeps reads the source package's debian/control (a minimal one), and finds the
# package's root by its DEBIAN folder.
install -d -m 0755 "$root/DEBIAN"
printf 'Source: palisade\n\nPackage: palisade\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O debian/palisade/usr/sbin/palisaded debian/palisade/usr/bin/palisadectl |
          sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

version=$(meson introspect --projectinfo "$build" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
name=${DEBFULLNAME:-$(git config user.name || true)}
email=${DEBEMAIL:-$(git config user.email || true)}
if [ -z "$name" ] || [ -z "$email" ]; then
  echo "build-deb: no maintainer: set DEBFULLNAME and DEBEMAIL (or git's user.name and user.email)" >&2
  exit 1
fi
maintainer="$name <$email>"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" packaging/debian/control.in >"$root/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

deb=$build/palisade_${version}_${arch}.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"

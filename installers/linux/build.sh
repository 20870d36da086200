#!/usr/bin/env bash
# Build localopen for Linux: a PyInstaller one-dir bundle and a .deb, from a clean virtual
# environment that holds localopen's runtime dependencies only (no test tools, no CUDA runtime in
# a CPU package).
#
#   installers/linux/build.sh [--backend cpu|cuda|vulkan] [--llama portable|installed]
#
# --llama portable (default, the release build): llama-cpp-python is compiled into the clean
#     environment (half an hour on two cores) with -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON
#     -DGGML_CPU_ALL_VARIANTS=ON: the CPU backend is built once per CPU generation (x64, SSE4.2,
#     AVX, AVX2, AVX-512 variants, AVX-VNNI, AMX) and the engine loads, at run time, the best one
#     that decodes on the machine (engine/cpu_variants.py), so every x86-64 CPU gets its own kernels.
# --llama installed: the llama-cpp-python installed for $PYTHON is copied in (fast; for tests: it
#     may use this CPU's newest instructions and then only runs on similar machines).
# --backend: cuda or vulkan adds -DGGML_CUDA=on / -DGGML_VULKAN=on (needs the CUDA toolkit / Vulkan SDK).
#
# The bundle must pass its --self-test before a .deb is written: a failed build leaves no package.
# The .deb's Depends are what the bundled programs and libraries need from the system (read by
# dpkg-shlibdeps, minus what the bundle ships), plus the fonts and font configuration Qt needs.
#
# Output: build/dist/localopen/ (the bundle) and build/localopen_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BACKEND=cpu; LLAMA=portable
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND=$2; shift 2 ;;
    --llama) LLAMA=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
VERSION=$($PYTHON -c "import re;print(re.search(r'^version = \"(.+)\"', open('pyproject.toml').read(), re.M)[1])")
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
DEB="build/localopen_${VERSION}_${ARCH}.deb"
mkdir -p build
rm -f "$DEB" "$DEB.partial"  # an older package must not pass for this build's

LLAMA_VERSION=$($PYTHON -c "from importlib.metadata import version; print(version('llama-cpp-python'))" 2>/dev/null) || {
  echo "$PYTHON has no llama-cpp-python: the build ships the llama.cpp version it names. Install it" >&2
  echo "(pip install llama-cpp-python), or name a Python that has it: PYTHON=/path/to/python $0" >&2
  exit 1
}
case "$LLAMA" in
  portable)
    CMAKE="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON"
    [ "$(uname -m)" = x86_64 ] && CMAKE="$CMAKE -DGGML_CPU_ALL_VARIANTS=ON"
    case "$BACKEND" in
      cuda) CMAKE="$CMAKE -DGGML_CUDA=on" ;;
      vulkan) CMAKE="$CMAKE -DGGML_VULKAN=on" ;;
      cpu) ;;
      *) echo "unknown backend $BACKEND" >&2; exit 2 ;;
    esac ;;
  installed) CMAKE="installed" ;;
  *) echo "unknown --llama $LLAMA" >&2; exit 2 ;;
esac

# The clean environment: made again when the llama.cpp build or the dependencies change.
VENV=build/venv
MADE="$LLAMA_VERSION $CMAKE $(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x $VENV/bin/python ] || [ "$(cat $VENV/.made 2>/dev/null)" != "$MADE" ]; then
  rm -rf $VENV
  $PYTHON -m venv $VENV
  if [ "$LLAMA" = installed ]; then
    # Copy the installed package with its metadata, so pip counts it as installed.
    $PYTHON - "$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'PY'
import shutil, sys
from importlib.metadata import distribution
from pathlib import Path
dist, site = distribution("llama-cpp-python"), Path(sys.argv[1])
for file in dist.files or []:
    source = Path(dist.locate_file(file))
    if source.is_file() and ".." not in file.parts:
        (site / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, site / file)
PY
  else
    # llama-cpp-python compiled with these flags, kept once built: pip's own wheel cache would hand
    # back a wheel built with other CMAKE_ARGS (it keys on the source only), so it is not used.
    KEY=$(printf '%s %s' "$LLAMA_VERSION" "$CMAKE" | sha256sum | cut -c1-16)
    BUILT="${LOCALOPEN_BUILD_CACHE:-$HOME/.cache/localopen-build}/llama-cpp-python-$LLAMA_VERSION-$KEY.tar"
    SITE=$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -f "$BUILT" ]; then
      echo "Reusing llama-cpp-python $LLAMA_VERSION built with CMAKE_ARGS='$CMAKE' ($BUILT)"
      tar -xf "$BUILT" -C "$SITE"
      $VENV/bin/python -c "from importlib.metadata import requires
print('\\n'.join(r.split(';')[0] for r in requires('llama-cpp-python') or [] if 'extra ==' not in r))" \
        | xargs -r $VENV/bin/pip install -q  # its own dependencies, as its metadata names them
    else
      echo "Compiling llama-cpp-python $LLAMA_VERSION with CMAKE_ARGS='$CMAKE' (many minutes, once)…"
      rm -rf build/llama-build
      CMAKE_ARGS="$CMAKE" $VENV/bin/pip install -q --no-cache-dir --no-binary llama-cpp-python \
        -C build-dir="$ROOT/build/llama-build" "llama-cpp-python==$LLAMA_VERSION"
      # llama-cpp-python installs the libraries it names, not the backends ggml builds as modules
      # (libggml-cpu-haswell.so …): they go beside libggml.so, where the engine looks for them.
      LIBS=$($VENV/bin/python -c 'import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / "lib")')
      find build/llama-build -name 'libggml-*.so'\
        -not -name 'libggml-base.so' -exec cp -n {} "$LIBS/" \;
      ls "$LIBS"/libggml-cpu*.so >/dev/null || { echo "no CPU backend was built" >&2; exit 1; }
      mkdir -p "$(dirname "$BUILT")"
      (cd "$SITE" && tar -cf "$BUILT.partial" llama_cpp llama_cpp_python-*.dist-info) && mv "$BUILT.partial" "$BUILT"
    fi
  fi
  $VENV/bin/pip install -q . "pyinstaller>=6.10"  # localopen's runtime dependencies only
  echo "$MADE" > $VENV/.made
fi
PYTHON=$ROOT/$VENV/bin/python

$PYTHON tools/make_icons.py build/icons
$PYTHON -m PyInstaller --noconfirm --log-level WARN --distpath build/dist --workpath build/pyinstaller \
  installers/localopen.spec

# --- the .deb: /usr/lib/localopen, a launcher on PATH, a menu entry and icons (no folder outside /usr of its
# own: removing the package leaves the system as it was, /opt included) ---------------------------
PKG=build/deb/localopen_${VERSION}_${ARCH}
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/usr/lib" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/doc/localopen"
cp -a build/dist/localopen "$PKG/usr/lib/localopen"
# Shared objects are not programs, and debug symbols only cost space in a release. Libraries that
# auditwheel relocated into *.libs folders (numpy's OpenBLAS…) break when stripped: leave them be.
find "$PKG/usr/lib/localopen" -type f \( -name "*.so" -o -name "*.so.*" \) -exec chmod 644 {} +
find "$PKG/usr/lib/localopen" -type f \( -name "*.so" -o -name "*.so.*" \) -not -path "*.libs/*" \
  -exec strip --strip-unneeded {} + 2>/dev/null || true
$PYTHON installers/linux/prune.py "$PKG/usr/lib/localopen"
# Qt links glvnd's GL dispatch libraries (1 MB). Shipped, they need no GL package: Depends on libgl1
# would pull Mesa and LLVM (some 150 MB) into a minimal system, for a window that paints without GL.
# On a desktop the dispatcher finds the system's own driver (Mesa, NVIDIA) as it always does.
for lib in libGL.so.1 libEGL.so.1 libGLX.so.0 libGLdispatch.so.0 libOpenGL.so.0; do
  # awk reads to the end: an early exit would end ldconfig by SIGPIPE, which pipefail makes fatal.
  src=$(/sbin/ldconfig -p | awk -v l="$lib" '!found && $1 == l && /x86-64|AArch64/ {print $NF; found = 1}')
  [ -n "$src" ] || { echo "$lib is not installed here (apt install libgl1 libegl1 libopengl0)" >&2; exit 1; }
  install -m 644 "$(readlink -f "$src")" "$PKG/usr/lib/localopen/_internal/$lib"
done
mkdir -p "$PKG/usr/share/man/man1"
gzip -9n < installers/linux/localopen.1 > "$PKG/usr/share/man/man1/localopen.1.gz"
ln -s ../lib/localopen/localopen "$PKG/usr/bin/localopen"  # relative: a link within /usr, as Debian makes them
install -m 644 installers/linux/localopen.desktop "$PKG/usr/share/applications/localopen.desktop"
# .gguf files as a type of their own (shared-mime-info's and desktop-file-utils' triggers index them).
mkdir -p "$PKG/usr/share/mime/packages"
install -m 644 installers/linux/localopen-gguf.xml "$PKG/usr/share/mime/packages/localopen.xml"
for size in 16 24 32 48 64 128 256 512; do
  dir="$PKG/usr/share/icons/hicolor/${size}x${size}/apps"
  mkdir -p "$dir"
  install -m 644 "build/icons/localopen-$size.png" "$dir/localopen.png"
done
mkdir -p "$PKG/usr/share/icons/hicolor/scalable/apps"
install -m 644 resources/icons/localopen.svg "$PKG/usr/share/icons/hicolor/scalable/apps/localopen.svg"
install -m 644 installers/linux/copyright "$PKG/usr/share/doc/localopen/copyright"
printf 'localopen (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- localopen developers <dev@localopen.invalid>  %s\n' \
  "$VERSION" "$VERSION" "$(date -R)" | gzip -9n > "$PKG/usr/share/doc/localopen/changelog.gz"
# The bundle loads a model through its engine process and opens its window, or no package is made.
QT_QPA_PLATFORM=offscreen LOCALOPEN_HOME="$(mktemp -d)" "$PKG/usr/lib/localopen/localopen" --self-test
DEPENDS=$($PYTHON installers/linux/depends.py "$PKG/usr/lib/localopen")
SIZE_KB=$(du -sk "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" -e "s/@DEPENDS@/$DEPENDS/" \
  installers/linux/control.in > "$PKG/DEBIAN/control"
chmod -R u+rwX,go+rX,go-w "$PKG"
# Every file's md5sum, as dpkg --verify and debsums read them.
(cd "$PKG" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz -z1 --build "$PKG" "$DEB.partial" >/dev/null
mv "$DEB.partial" "$DEB"
echo "bundle: build/dist/localopen ($(du -sh build/dist/localopen | cut -f1))"
echo "package: $DEB ($(du -sh "$DEB" | cut -f1), installed $((SIZE_KB / 1024)) MB)"
echo "depends: $DEPENDS"

#!/usr/bin/env bash
# Build localopen for Linux from a clean checkout: a PyInstaller one-dir bundle and a .deb.
#
#   installers/linux/build.sh [--backend cpu|cuda|vulkan] [--cpu portable|compat] [--llama portable|installed]
#
# --llama portable (default): a fresh llama-cpp-python is compiled into build/venv (minutes) with
#     -DGGML_NATIVE=OFF, so the bundle runs on other machines, not only on this CPU:
#       --cpu portable (default): AVX, AVX2, FMA, F16C (x86-64-v3: Intel Haswell / AMD Zen and later)
#       --cpu compat: AVX only, for older CPUs that would crash with "illegal instruction"
#     The venv sees this Python's other packages (PySide6, huggingface_hub…), so only llama.cpp is rebuilt.
# --llama installed: bundle the llama-cpp-python already installed here (fast; for tests: it may
#     use this CPU's newest instructions and then only runs on similar machines).
# --backend: cuda or vulkan adds -DGGML_CUDA=on / -DGGML_VULKAN=on (needs the CUDA toolkit / Vulkan SDK).
#
# Output: build/dist/localopen/ (the bundle) and build/localopen_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BACKEND=cpu; CPU=portable; LLAMA=portable
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND=$2; shift 2 ;;
    --cpu) CPU=$2; shift 2 ;;
    --llama) LLAMA=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
VERSION=$($PYTHON -c "import re;print(re.search(r'^version = \"(.+)\"', open('pyproject.toml').read(), re.M)[1])")
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
mkdir -p build

if [ "$LLAMA" = portable ]; then
  CMAKE="-DGGML_NATIVE=OFF"
  [ "$CPU" = compat ] && CMAKE="$CMAKE -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF"
  case "$BACKEND" in
    cuda) CMAKE="$CMAKE -DGGML_CUDA=on" ;;
    vulkan) CMAKE="$CMAKE -DGGML_VULKAN=on" ;;
    cpu) ;;
    *) echo "unknown backend $BACKEND" >&2; exit 2 ;;
  esac
  if [ ! -x build/venv/bin/python ] || [ "$(cat build/venv/.cmake 2>/dev/null)" != "$CMAKE" ]; then
    rm -rf build/venv
    $PYTHON -m venv --system-site-packages build/venv
    LLAMA_VERSION=$($PYTHON -c "from importlib.metadata import version; print(version('llama-cpp-python'))")
    echo "Compiling llama-cpp-python $LLAMA_VERSION with CMAKE_ARGS='$CMAKE' (several minutes)…"
    CMAKE_ARGS="$CMAKE" build/venv/bin/pip install --no-cache-dir --force-reinstall --no-deps \
      "llama-cpp-python==$LLAMA_VERSION"
    build/venv/bin/pip install -q pyinstaller
    echo "$CMAKE" > build/venv/.cmake
  fi
  PYTHON=$ROOT/build/venv/bin/python
fi

$PYTHON -m PyInstaller --version >/dev/null 2>&1 || $PYTHON -m pip install -q pyinstaller
$PYTHON tools/make_icons.py build/icons
$PYTHON -m PyInstaller --noconfirm --log-level WARN --distpath build/dist --workpath build/pyinstaller \
  installers/localopen.spec

# --- the .deb: /opt/localopen, a launcher on PATH, a menu entry and icons ---------------------
PKG=build/deb/localopen_${VERSION}_${ARCH}
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/doc/localopen"
cp -a build/dist/localopen "$PKG/opt/localopen"
# Shared objects are not programs, and debug symbols only cost space in a release. Libraries that
# auditwheel relocated into *.libs folders (numpy's OpenBLAS…) break when stripped: leave them be.
find "$PKG/opt/localopen" -type f \( -name "*.so" -o -name "*.so.*" \) -exec chmod 644 {} +
find "$PKG/opt/localopen" -type f \( -name "*.so" -o -name "*.so.*" \) -not -path "*.libs/*" \
  -exec strip --strip-unneeded {} + 2>/dev/null || true
mkdir -p "$PKG/usr/share/man/man1"
gzip -9n < installers/linux/localopen.1 > "$PKG/usr/share/man/man1/localopen.1.gz"
ln -s /opt/localopen/localopen "$PKG/usr/bin/localopen"
install -m 644 installers/linux/localopen.desktop "$PKG/usr/share/applications/localopen.desktop"
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
SIZE_KB=$(du -sk "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" installers/linux/control.in \
  > "$PKG/DEBIAN/control"
chmod -R u+rwX,go+rX,go-w "$PKG"
dpkg-deb --root-owner-group -Zxz -z1 --build "$PKG" "build/localopen_${VERSION}_${ARCH}.deb" >/dev/null
# Smoke test: the bundle loads a model through its engine process and opens its window.
QT_QPA_PLATFORM=offscreen LOCALOPEN_HOME="$(mktemp -d)" build/dist/localopen/localopen --self-test
echo "bundle: build/dist/localopen ($(du -sh build/dist/localopen | cut -f1))"
echo "package: build/localopen_${VERSION}_${ARCH}.deb ($(du -sh "build/localopen_${VERSION}_${ARCH}.deb" | cut -f1))"

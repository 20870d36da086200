#!/usr/bin/env bash
# Build localopen for macOS: localopen.app (PyInstaller BUNDLE) and a .dmg.
#   installers/macos/build.sh
# Metal is on by default in llama.cpp on macOS, so Apple-silicon Macs get GPU offload with no flag.
# GGML_NATIVE=OFF keeps the build portable across Macs of the same architecture.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(python3 -c "import re;print(re.search(r'^version = \"(.+)\"', open('pyproject.toml').read(), re.M)[1])")
python3 -m venv build/venv
build/venv/bin/pip install --upgrade pip
build/venv/bin/pip install . pyinstaller
LLAMA=$(build/venv/bin/python -c "from importlib.metadata import version; print(version('llama-cpp-python'))")
CMAKE_ARGS="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}" build/venv/bin/pip install --force-reinstall --no-cache-dir --no-deps \
  "llama-cpp-python==$LLAMA"
build/venv/bin/python tools/make_icons.py build/icons
# An .icns from the PNGs (iconutil ships with macOS).
ICONSET=build/icons/localopen.iconset
mkdir -p "$ICONSET"
for s in 16 32 128 256 512; do
  cp "build/icons/localopen-$s.png" "$ICONSET/icon_${s}x${s}.png"
  d=$((s * 2)); [ -f "build/icons/localopen-$d.png" ] && cp "build/icons/localopen-$d.png" "$ICONSET/icon_${s}x${s}@2x.png"
done
iconutil -c icns "$ICONSET" -o build/icons/localopen.icns
build/venv/bin/python -m PyInstaller --noconfirm --distpath build/dist --workpath build/pyinstaller installers/localopen.spec
build/dist/localopen.app/Contents/MacOS/localopen-cli --self-test
rm -f "build/localopen-$VERSION.dmg"
hdiutil create -volname localopen -srcfolder build/dist/localopen.app -ov -format UDZO "build/localopen-$VERSION.dmg"
echo "built build/localopen-$VERSION.dmg"

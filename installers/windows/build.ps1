# Build localopen for Windows: PyInstaller bundle + NSIS installer.
#   powershell -File installers/windows/build.ps1 [-Backend cpu|cuda|vulkan] [-Cpu portable|compat]
# Needs Python 3.10+, Visual Studio Build Tools (C++), CMake and NSIS (makensis on PATH).
param([string]$Backend = "cpu", [string]$Cpu = "portable")
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$cmake = "-DGGML_NATIVE=OFF"   # portable: runs on other machines, not only this CPU
if ($Cpu -eq "compat") { $cmake += " -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF" }
if ($Backend -eq "cuda") { $cmake += " -DGGML_CUDA=on" }
if ($Backend -eq "vulkan") { $cmake += " -DGGML_VULKAN=on" }
python -m venv build\venv
& build\venv\Scripts\python -m pip install --upgrade pip
& build\venv\Scripts\python -m pip install . pyinstaller
$env:CMAKE_ARGS = $cmake
$llama = & build\venv\Scripts\python -c "from importlib.metadata import version; print(version('llama-cpp-python'))"
& build\venv\Scripts\python -m pip install --force-reinstall --no-cache-dir --no-deps "llama-cpp-python==$llama"
& build\venv\Scripts\python tools\make_icons.py build\icons
& build\venv\Scripts\python -m PyInstaller --noconfirm --distpath build\dist --workpath build\pyinstaller installers\localopen.spec
$version = (Select-String -Path pyproject.toml -Pattern '^version = "(.+)"').Matches[0].Groups[1].Value
makensis /DVERSION=$version /DSOURCE_DIR=..\..\build\dist\localopen /DOUT_FILE=..\..\build\localopen-$version-setup.exe installers\windows\localopen.nsi
& build\dist\localopen\localopen-cli.exe --self-test

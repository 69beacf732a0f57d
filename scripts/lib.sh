# Shared by scripts/run and scripts/test: install what is missing, then configure and build.
# Sourced, not run.

SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLUICE_BUILD_DIR="${SLUICE_BUILD_DIR:-$SLUICE_ROOT/build}"

# Debian 12 packages the build and the tests need.
SLUICE_APT_PACKAGES=(
  g++ cmake ninja-build ccache pkg-config git
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev doctest-dev
  libcpp-httplib-dev libpcre2-dev libopenblas-dev libfaiss-dev librocksdb-dev
  libsqlite3-dev libpq-dev libssl-dev libstemmer-dev libutf8proc-dev zlib1g-dev libpoppler-cpp-dev
  postgresql
)

# Debian 12 packages only the tests need: the browser the web console's tests drive.
SLUICE_TEST_APT_PACKAGES=(chromium)

sluice_log() { printf '==> %s\n' "$*" >&2; }

sluice_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    sluice_log "need root to run: $*"
    return 1
  fi
}

# Installs the packages that are not installed yet, with one apt-get update at most.
sluice_install_packages() {
  local missing=()
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  sluice_log "installing ${missing[*]}"
  sluice_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sluice_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}

# Node.js and npm run the client-side reference tools (tokenizer parity, OpenAI client tests).
# A Node.js that is already installed (from any source) is used as it is.
sluice_install_node() {
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    return 0
  fi
  sluice_install_packages nodejs npm
}

sluice_configure() {
  local args=(-S "$SLUICE_ROOT" -B "$SLUICE_BUILD_DIR" -G Ninja)
  if [ ! -f "$SLUICE_BUILD_DIR/CMakeCache.txt" ]; then
    args+=(-DCMAKE_BUILD_TYPE="${SLUICE_BUILD_TYPE:-Release}")
  fi
  cmake "${args[@]}" "$@" >/dev/null
}

sluice_build() {
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  cmake --build "$SLUICE_BUILD_DIR" -j "$jobs" "$@"
}

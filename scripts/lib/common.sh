# scripts/lib/common.sh: shared by scripts/run and scripts/test. Sourced, not run.
# Installs what is missing (idempotent, quiet when all is there) and builds.

TG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages the build and the tests need.
TG_DEB_PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libcurl4-openssl-dev libjansson-dev libssl-dev node-llhttp libcriterion-dev
  libmicrohttpd-dev libjwt-dev libargon2-dev libpq-dev postgresql postgresql-client
  curl ca-certificates openssl unzip
)

tg_log() { printf '==> %s\n' "$*" >&2; }

tg_install_debs() {
  local missing=()
  for p in "${TG_DEB_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
  [ ${#missing[@]} -eq 0 ] && return 0
  tg_log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

tg_install_npm() {
  # npm ci only when the lock changed since the last install
  local stamp="$TG_ROOT/node_modules/.tollgate-lock"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$TG_ROOT/package-lock.json"; then
    return 0
  fi
  tg_log "installing npm packages (npm ci)"
  (cd "$TG_ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$TG_ROOT/package-lock.json" "$stamp"
}

# tg_build DIR [cmake args...]; TG_BUILD_TARGET limits the build to one target
tg_build() {
  local dir=$1
  shift
  cmake -S "$TG_ROOT" -B "$dir" -DTG_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" ${TG_BUILD_TARGET:+--target "$TG_BUILD_TARGET"} \
    -- --no-print-directory >/dev/null
}

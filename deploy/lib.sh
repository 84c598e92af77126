# Shared by the operator scripts (deploy/*.sh, contract/run.sh). Source it after
# `set -euo pipefail` with SCRIPT set to the script's name; it moves to the repository root.
#
#   say TEXT          a section heading
#   die TEXT          the reason on stderr, exit 1
#   portico_binary [PATH]   sets PORTICO: PATH, or the debug binary built now; TARGET too
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf '\n== %s\n' "$*"; }
die() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
portico_binary() {
  PORTICO=${1:-}
  if [ -z "$PORTICO" ]; then
    cargo build -q -p portico --locked
    PORTICO="$TARGET/debug/portico"
  fi
  [ -x "$PORTICO" ] || die "no portico binary at $PORTICO"
}

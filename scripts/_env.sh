# Sourced by scripts/demo and scripts/test: a virtualenv in .venv with tam and, given an argument, those
# extras of pyproject.toml (default `dev`: test libraries and linters); `demo` installs tam alone.
set -euo pipefail
extras="${1:-dev}"; [ "$extras" = demo ] && extras=""  # source scripts/_env.sh [demo|EXTRAS]
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_install() {
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; python3 -m venv .venv; }
fi
stamp=".venv/.tam-installed-$(sha1sum pyproject.toml | cut -c1-12)"
# tam alone is in any install of this pyproject.toml; extras need their own stamp
if [ ! -f "$stamp${extras:+-$extras}" ] && { [ -n "$extras" ] || ! compgen -G "$stamp*" >/dev/null; }; then
  echo "installing tam${extras:+ with its $extras extras} into .venv ..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
  find .venv -maxdepth 1 -name '.tam-installed-*' ! -name "${stamp#.venv/}*" -delete
  touch "$stamp${extras:+-$extras}"
fi
export PATH="$PWD/.venv/bin:$PATH"

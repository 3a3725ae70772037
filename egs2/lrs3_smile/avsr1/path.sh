# Environment of the recipe (sourced by avsr.sh and local/*.sh).
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export MAIN_ROOT
# the project's virtual environment (make install); a user's own environment otherwise
if [ -f "${MAIN_ROOT}/.venv/bin/activate" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
  # shellcheck disable=SC1091
  . "${MAIN_ROOT}/.venv/bin/activate"
fi
export PATH="${PWD}/utils:${PATH}"
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
# ESPnet's tasks import g2p_en, which downloads nltk data at import time unless it is
# found; importing espnet2_smile (done by every entry point) makes that offline-safe.
# sclite from Debian's sctk package lives outside PATH
sclite=$(command -v sclite || echo /usr/lib/sctk/bin/sclite)
export sclite

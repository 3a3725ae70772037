# Environment of the recipe (sourced by avsr.sh and local/*.sh).
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
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
# found. espnet2_smile's entry points make that offline-safe themselves; for ESPnet's
# own tools (tokenize_text, lm_train) the package's empty stand-ins go on NLTK_DATA,
# after any folder the user set.
export NLTK_DATA="${NLTK_DATA:+${NLTK_DATA}:}${MAIN_ROOT}/espnet2_smile/resources/nltk_data"
# sclite from Debian's sctk package lives outside PATH
sclite=$(command -v sclite || echo /usr/lib/sctk/bin/sclite)
export sclite

#!/usr/bin/env bash
# Option parsing for the recipe scripts (sourced, not executed).
#
# Every `--name value` (or `--name=value`) on the command line sets the shell
# variable `name` (dashes in the name become underscores); the variable must already
# be defined by the calling script, so a misspelt option is an error, not a silent
# no-op. `--help` prints the caller's `help_message`. Positional arguments stay in "$@".
while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      echo -e "${help_message:-No help available.}" 1>&2
      exit 0 ;;
    --*=*)
      _name="${1%%=*}"; _name="${_name#--}"; _name="${_name//-/_}"; _value="${1#*=}"; shift ;;
    --*)
      _name="${1#--}"; _name="${_name//-/_}"
      if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" 1>&2; exit 1; fi
      _value="$2"; shift 2 ;;
    *) break ;;
  esac
  if [ -z "${!_name+set}" ] ; then
    echo "$0: invalid option --${_name} (no such variable in $0)" 1>&2
    exit 1
  fi
  # keep booleans honest: a variable that is true/false accepts only true/false
  _old="${!_name}"
  if [[ "${_old}" == "true" || "${_old}" == "false" ]] && [[ "${_value}" != "true" && "${_value}" != "false" ]]; then
    echo "$0: option --${_name} must be true or false, got '${_value}'" 1>&2
    exit 1
  fi
  printf -v "${_name}" '%s' "${_value}"
done
unset _name _value _old
true

# CodeBeaker resident runner for Bash ("isolation": "program").
#
# Started by the agent as the sandbox user with a control socket as fd 0 and the call's
# stdout/stderr as pipes (protocol: agent/src/instance.rs). It checks once that the program
# parses (`bash -n`: a syntax error is printed as `bash program.sh` prints it, and the
# runner exits 2: every call gets that failure), says "ready", then per input line runs the
# program in a subshell `( ... )` with `input_data` set to the line (edge mode): top-level
# variables, functions, traps, `cd` and `set` options are fresh each call, as in call mode.
# It answers "done <exit> <result bytes or -1> 0\n" + the result bytes.
#
# The call's exit status is the subshell's: the status of the program's last command, or
# n for `exit n` (which ends only the subshell: the runner lives on and reports n). A
# `result` that is not exactly one JSON text is a clear stderr line and exit code 1.
# Inputs are read with `read`, a byte per system call: inputs of megabytes cost ~1 s/MB.
program=$1
mode=$2
exec {__cb_ctl}<&0 </dev/null
bash -n "$program" || exit $?
__cb_out=$(mktemp /tmp/.codebeaker-result.XXXXXX) || exit 1
printf 'ready\n' >&"$__cb_ctl"
while IFS= read -r __cb_line <&"$__cb_ctl"; do
  : >"$__cb_out"
  if [ "$mode" = plain ]; then
    (
      unset __cb_line __cb_out __cb_status __cb_payload
      exec {__cb_ctl}>&-
      source "$program"
    )
    __cb_status=$?
    printf 'done %d -1 0\n' "$__cb_status" >&"$__cb_ctl"
    continue
  fi
  (
    input_data=$__cb_line
    unset __cb_line result __cb_status __cb_payload
    exec {__cb_ctl}>&-
    # `return` at the top level of a sourced file ends the code; the status is kept.
    source "$program"
    __cb_status=$?
    if [ -n "${result+set}" ]; then
      # A number, true/false/null or a plain string needs no jq (jq 1.6 costs ~17 ms to start).
    if [[ $result =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$|^(true|false|null)$|^\"[^\"\\[:cntrl:]]*\"$ ]] \
      || printf '%s' "$result" | jq -es 'length == 1' >/dev/null 2>&1; then
        printf '%s' "$result" >"$__cb_out"
      else
        echo "codebeaker: result is not valid JSON (one JSON text expected, e.g. result=\$(jq -n '{a: 1}')): ${result:0:200}" >&2
        exit 1
      fi
    fi
    exit "$__cb_status"
  )
  __cb_status=$?
  if [ "$__cb_status" = 0 ] && [ -s "$__cb_out" ]; then
    __cb_payload=$(<"$__cb_out")
    LC_ALL=C
    printf 'done 0 %d 0\n%s' "${#__cb_payload}" "$__cb_payload" >&"$__cb_ctl"
    unset LC_ALL
  else
    printf 'done %d -1 0\n' "$__cb_status" >&"$__cb_ctl"
  fi
done
rm -f "$__cb_out"
exit 0

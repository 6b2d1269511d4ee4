input_data=$(</workspace/input.json); unset result; {
{{code}}
}
__codebeaker_status=$?
if [ -n "${result+set}" ]; then
  # A number, true/false/null or a plain string needs no jq (jq 1.6 costs ~17 ms to start).
  if [[ $result =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$|^(true|false|null)$|^\"[^\"\\[:cntrl:]]*\"$ ]] \
    || printf '%s' "$result" | jq -es 'length == 1' >/dev/null 2>&1; then
    printf '%s' "$result" >/workspace/output.json
  else
    echo "codebeaker: result is not valid JSON (one JSON text expected, e.g. result=\$(jq -n '{a: 1}')): ${result:0:200}" >&2
    exit 1
  fi
fi
exit "$__codebeaker_status"

# CodeBeaker edge contract for Bash. `input_data` holds the input as JSON text; read it
# with jq. Set `result` to a JSON text (a string holding JSON); it is checked with jq and
# written to /workspace/output.json as is. Not setting it means no output.
#
#     x=$(jq -r .x <<<"$input_data")
#     result=$((x + 1))                                       # 42 is JSON text
#     result=$(jq -c '{y: (.x + 1), name: .user.name}' <<<"$input_data")
#     result=$(jq -n --arg s "$text" '$s')                   # a string, quoted by jq
#
# Your code is a brace group at the top level of the script: Bash parses all of it before
# running any of it (a syntax error runs nothing), variables are the script's, and line
# numbers in Bash's messages are yours plus one (the template's first line). The status of
# your last command is the program's exit status, as with `bash program.sh`; `exit n` ends
# the program with n and no output. A `result` that is not exactly one JSON text is a
# clear error on stderr and exit code 1.

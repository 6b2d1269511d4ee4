# CodeBeaker edge contract for Ruby. Your code reads `input_data` (the input, parsed with
# Ruby's stdlib `json`: objects are Hashes with String keys) and sets `result`:
#
#     result = { "y" => input_data["x"] + 1, "name" => input_data.dig("user", "name") }
#
# `result` is written to /workspace/output.json with JSON.generate. Not setting it means no
# output. `result = nil` (or a `result =` in a branch that did not run, which Ruby also
# makes nil) writes `null`. A value JSON cannot represent (NaN, Infinity, invalid UTF-8)
# is a clear error on stderr and exit code 1; other objects are written as JSON writes
# them (`to_json`, or `to_s` as a string).
#
# Your code runs at the top level of a script, in a scope of its own (`eval` with a
# binding that holds only `input_data`), so its line numbers are its own and
# `input_data`/`result` are ordinary locals. As in any Ruby script, a method you `def`
# does not see those locals (pass them in). A top-level `return` ends your code; a
# `result` set before it is still written. `exit`/`exit!`/`abort` end the program with
# their code and no output.
require "json"

def __codebeaker_scope(input_data)
  binding
end

__codebeaker_b = __codebeaker_scope(JSON.parse(File.read("/workspace/input.json", encoding: "UTF-8")))
__codebeaker_code = DATA.read
DATA.close
__codebeaker_file = __FILE__
__codebeaker_at = "#{__codebeaker_file}:#{__LINE__ + 4}:in "
# Lets error_highlight point at the failing call in the code (eval'd code keeps its lines).
RubyVM.keep_script_lines = true
begin
  eval(__codebeaker_code, __codebeaker_b, __codebeaker_file, 1)
rescue SystemExit, SignalException
  raise
rescue Exception => e
  __codebeaker_exit = CodeBeaker.report(e, __codebeaker_at)
  exit __codebeaker_exit if __codebeaker_exit
end

if __codebeaker_b.local_variable_defined?(:result)
  begin
    __codebeaker_text = JSON.generate(__codebeaker_b.local_variable_get(:result))
  rescue JSON::GeneratorError, Encoding::UndefinedConversionError, ArgumentError, SystemStackError => e
    $stderr.puts("codebeaker: result is not JSON-serializable: #{e.class}: #{e.message}")
    exit 1
  end
  File.write("/workspace/output.json", __codebeaker_text)
end
__END__
{{code}}

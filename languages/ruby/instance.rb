# CodeBeaker resident runner for Ruby ("isolation": "program").
#
# Started by the agent as the sandbox user with a control socket as fd 0 and the call's
# stdout/stderr as pipes (protocol: agent/src/instance.rs), after prelude.rb (-r). It reads
# the program once and checks that it parses (a syntax error is printed as `ruby
# program.rb` prints it, and the runner exits 1: every call gets that failure), says
# "ready", then per input line evaluates the code in a fresh binding that holds only
# `input_data` (edge mode; nothing in plain mode) and answers
# "done <exit> <result bytes or -1> <leaked>\n" followed by the result bytes.
#
# Per call: top-level locals are the binding's, fresh each call; the constants (classes,
# modules) and the top-level methods (`def`) a call defines are removed after it, so the
# next call defines them afresh with no "already initialized constant" warning. Globals
# ($x), loaded libraries and changes to existing classes persist, by design of the mode.
#
# `exit`/`exit!`/`abort` end the call with their code and this process (the agent starts a
# fresh instance). Any other exception is the call's failure, printed as Ruby prints an
# uncaught exception, exit code 1; the instance lives on. A Thread still alive after a call
# is reported as `leaked` (the agent replaces the instance).
require "json"

ctl = IO.for_fd(0, "r+b", autoclose: false).dup
ctl.binmode
ctl.sync = true
$stdin.reopen(File::NULL)

path, mode = ARGV
plain = mode == "plain"
ARGV.clear

def __codebeaker_scope(input_data)
  binding
end

def __codebeaker_plain_scope
  binding
end

# Ruby prints uncaught exceptions the same way whatever the frame; the runner's own
# frames below the eval are cut (CodeBeaker.report).
source = File.read(path, encoding: "UTF-8")
begin
  RubyVM::InstructionSequence.compile(source, path, path, 1)
rescue SyntaxError => e
  $stderr.puts(e.message)
  $stderr.flush
  exit 1
end
RubyVM.keep_script_lines = true

base_constants = Object.constants
base_methods = Object.private_instance_methods(false) + Object.public_instance_methods(false)
at = "#{__FILE__}:"

ctl.write("ready\n")
loop do
  line = ctl.gets
  exit 0 if line.nil?
  b = nil
  exit_code = 0
  begin
    b = plain ? __codebeaker_plain_scope : __codebeaker_scope(JSON.parse(line))
  rescue Exception => e
    $stderr.puts("codebeaker: the input is not valid JSON: #{e.message}")
    exit_code = 1
  end
  if b
    begin
      eval(source, b, path, 1)
    rescue SystemExit, SignalException
      $stdout.flush
      $stderr.flush
      raise
    rescue Exception => e
      exit_code = CodeBeaker.report(e, at) || 0
    end
  end
  payload = nil
  if exit_code == 0 && !plain && b.local_variable_defined?(:result)
    begin
      payload = JSON.generate(b.local_variable_get(:result)).b
    rescue JSON::GeneratorError, Encoding::UndefinedConversionError, ArgumentError, SystemStackError => e
      $stderr.puts("codebeaker: result is not JSON-serializable: #{e.class}: #{e.message}")
      exit_code = 1
    rescue Exception => e
      exit_code = CodeBeaker.report(e, at) || 1
    end
  end
  b = nil
  (Object.constants - base_constants).each do |c|
    Object.send(:remove_const, c)
  rescue NameError
  end
  (Object.private_instance_methods(false) + Object.public_instance_methods(false) - base_methods).each do |m|
    Object.send(:remove_method, m)
  rescue NameError
  end
  begin
    $stdout.flush
    $stderr.flush
  rescue StandardError
  end
  leaked = Thread.list.count(&:alive?) > 1 ? 1 : 0
  ctl.write("done #{exit_code} #{payload ? payload.bytesize : -1} #{leaked}\n#{payload}")
end

# CodeBeaker: loaded with `ruby --disable-gems -r THIS` before every Ruby program.
#
# RubyGems costs ~50 ms of CPU per start (measured: 69 ms → 14 ms wall for a JSON round
# trip). Without it, everything in Ruby's own library directory still loads (json, set,
# date, ...). This file puts back, lazily, what --disable-gems takes away:
#   - a `require` that RubyGems would have satisfied (a bundled gem such as `prime`, or
#     any gem installed in the image) loads RubyGems on its first LoadError and retries;
#   - "Did you mean?" suggestions and error_highlight's `^^^^` under the failing call: both
#     are loaded only when the program ends with an uncaught exception (they decorate the
#     message as it is printed), so a run that succeeds never pays for them.
module Kernel
  alias_method :__codebeaker_require, :require
  private :__codebeaker_require

  def require(name)
    __codebeaker_require(name)
  rescue LoadError
    raise if defined?(::Gem::Specification)
    __codebeaker_require("rubygems")
    require(name) # RubyGems' own require now
  end
  private :require
end

module CodeBeaker
  # Loads the error decorators (cheap: ~1 ms, and only on the way out of a failure).
  def self.decorate_errors
    %w[did_you_mean error_highlight].each do |lib|
      __codebeaker_require(lib)
    rescue LoadError
    end
  end
end

at_exit do
  CodeBeaker.decorate_errors if $! && !$!.is_a?(SystemExit)
end

# How an exception that ends the code is printed (edge.rb, instance.rb): as `ruby program.rb`
# prints it, without the template's or runner's frames; exits 1.
module CodeBeaker
  # `at`: "FILE:LINE:in " of the frame that evaluated the code.
  # Returns nil for a top-level `return` (the code ended there, normally), else prints the
  # exception and returns the exit code (1).
  def self.report(e, at)
    bt = e.backtrace || []
    top = bt.first.to_s
    # A top-level `return`, allowed in a script: the code simply ended.
    return nil if e.is_a?(LocalJumpError) && e.reason == :return && top.include?("in `__codebeaker_scope'")
    if e.is_a?(SyntaxError) && top.start_with?(at)
      # The code does not parse: printed as `ruby program.rb` prints it.
      $stderr.puts(e.message)
      $stderr.flush
      return 1
    end
    cut = bt.index { |l| l.start_with?(at) } || bt.size
    e.set_backtrace(bt[0...cut].map { |l| l.sub("in `__codebeaker_scope'", "in `<main>'") }) if cut > 0
    decorate_errors if respond_to?(:decorate_errors)
    $stderr.write(e.full_message(highlight: false, order: :top))
    $stderr.flush
    1
  end
end

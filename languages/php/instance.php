<?php
// CodeBeaker resident runner for PHP ("isolation": "program").
//
// Started by the agent as the sandbox user with a control socket as fd 0 and the call's
// stdout/stderr as pipes (protocol: agent/src/instance.rs). It reads the program once and
// checks that it parses (a parse error is printed as `php program.php` prints it, exit
// 255: every call gets that failure), says "ready", then per input line forks: the child
// sets `$input_data` (edge mode) and includes the program at the global scope, exactly
// as call mode runs it, and hands `$result` back; the parent answers
// "done <exit> <result bytes or -1> 0\n" + the result bytes once the child has exited.
//
// Why a fork per call, not an `include` per call in this process: a PHP program that
// declares a function or a class cannot be included twice ("Cannot redeclare f()"), and
// PHP cannot undeclare them. A forked child (~1 ms) starts from the loaded runner with
// fresh globals, functions, classes and statics every call; nothing a call does persists.
//
// `exit(n)`/`die()` and fatal errors end the call's child with its code (uncaught: 255),
// as in call mode; the runner lives on and reports that code. A child killed by a signal
// (the OOM killer, SIGKILL) makes the runner kill itself with the same signal, so the
// agent sees the runner die and classifies the call (memory limit) as in call mode.
require __DIR__ . '/source.php';

final class CodeBeakerRun
{
    public static string $path = '';
    public static string $code = '';
    public static bool $plain = false;
    public static mixed $input = null;
    /** @var resource|null the child's end of the result channel */
    public static $out = null;

    /** The parent's loop. Returns only in a forked child, which then runs one call. */
    public static function serve(array $argv): void
    {
        [, $path, $mode] = $argv + [null, null, 'edge'];
        self::$path = $path;
        self::$plain = $mode === 'plain';
        // The control socket moves off fd 0 (php://fd dups it); fd 0 becomes /dev/null
        // (the lowest free descriptor is the one fopen takes once STDIN is closed).
        $ctl = fopen('php://fd/0', 'r+');
        fclose(STDIN);
        $null = fopen('/dev/null', 'r');
        self::$code = (string) file_get_contents($path);
        self::check();
        fwrite($ctl, "ready\n");
        while (($line = fgets($ctl)) !== false) {
            [$exit, $payload] = self::call($line, $ctl, $null);
            $size = $payload === null ? -1 : strlen($payload);
            fwrite($ctl, "done $exit $size 0\n" . ($payload ?? ''));
            fflush($ctl);
        }
        exit(0);
    }

    /** A parse error at load: printed as PHP prints it, every call fails with it. */
    private static function check(): void
    {
        $code = self::$plain ? self::$code : CodeBeakerSource::tagged(self::$code);
        try {
            token_get_all($code, TOKEN_PARSE);
        } catch (\ParseError $e) {
            fwrite(STDERR, 'PHP Parse error:  ' . $e->getMessage() . ' in ' . self::$path . ' on line ' . $e->getLine() . "\n");
            exit(255);
        }
    }

    /** @return array{int, ?string} the call's exit code and result JSON */
    private static function call(string $line, $ctl, $null): array
    {
        if (!self::$plain) {
            try {
                self::$input = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                fwrite(STDERR, 'codebeaker: the input is not valid JSON: ' . $e->getMessage() . "\n");
                return [1, null];
            }
        }
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $pid = pcntl_fork();
        if ($pid < 0) {
            fwrite(STDERR, "codebeaker: fork failed (process limit?)\n");
            return [1, null];
        }
        if ($pid === 0) {
            fclose($ctl);
            fclose($pair[0]);
            self::$out = $pair[1];
            // Back to the global scope, where the call runs (see the end of this file).
            throw new CodeBeakerChild();
        }
        fclose($pair[1]);
        $back = stream_get_contents($pair[0]);
        fclose($pair[0]);
        pcntl_waitpid($pid, $status);
        self::$input = null;
        $clean = is_string($back) && str_ends_with($back, "\0ok");
        if ($clean) {
            $back = substr($back, 0, -3);
        }
        if ($clean && pcntl_wifsignaled($status) && pcntl_wtermsig($status) === SIGKILL) {
            $status = 0; // the fast exit of a call that ran to its end (finish)
        } elseif (pcntl_wifsignaled($status)) {
            // Killed (OOM, SIGKILL): the runner goes the same way, the agent classifies it.
            posix_kill(posix_getpid(), pcntl_wtermsig($status));
            exit(128 + pcntl_wtermsig($status));
        }
        $exit = $status === 0 ? 0 : (pcntl_wifexited($status) ? pcntl_wexitstatus($status) : 1);
        $payload = ($exit === 0 && is_string($back) && str_starts_with($back, '=')) ? substr($back, 1) : null;
        return [$exit, $payload];
    }

    /** The child, after the program ran to its end. */
    public static function finish(bool $has, mixed $result): void
    {
        if ($has && !self::$plain) {
            $text = CodeBeakerSource::encode($result);
            if ($text === null) {
                exit(1);
            }
            fwrite(self::$out, '=' . $text);
        }
        // PHP's own exit (module shutdown) costs ~4 ms; SIGKILL ~0.4. What the program's
        // end owes it still happens first: this runs after its shutdown functions, drops
        // its globals (destructors) and flushes its output buffers. The marker tells the
        // parent that this SIGKILL is a clean exit 0.
        register_shutdown_function(static function (): void {
            foreach (array_keys($GLOBALS) as $k) {
                if ($k !== 'GLOBALS') {
                    unset($GLOBALS[$k]);
                }
            }
            gc_collect_cycles();
            while (ob_get_level() > 0) {
                ob_end_flush();
            }
            fflush(STDOUT);
            fflush(STDERR);
            fwrite(CodeBeakerRun::$out, "\0ok");
            fclose(CodeBeakerRun::$out);
            posix_kill(posix_getpid(), SIGKILL);
        });
        exit(0);
    }
}

final class CodeBeakerChild extends \Exception
{
}

try {
    CodeBeakerRun::serve($argv);
} catch (CodeBeakerChild $__codebeaker) {
    unset($__codebeaker);
}
// In a forked child: one call, at the global scope, as `php program.php` runs it.
$argv = [CodeBeakerRun::$path];
$argc = 1;
$_SERVER['argv'] = $argv;
$_SERVER['argc'] = 1;
if (!CodeBeakerRun::$plain) {
    $input_data = CodeBeakerRun::$input;
    CodeBeakerSource::prepare(CodeBeakerRun::$code);
}
include CodeBeakerRun::$path;
CodeBeakerRun::finish(array_key_exists('result', $GLOBALS), $GLOBALS['result'] ?? null);

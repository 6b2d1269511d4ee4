<?php
// CodeBeaker: helpers shared by edge.php (the edge template) and instance.php (the
// resident runner). Not for user code.

// Serves the user's code for one `include` of its own path, so that it is compiled as a
// file of its own (its `declare(strict_types=1)` and `namespace` are first in that file,
// `__FILE__` and line numbers are its own) while an untagged snippet (`$result = 1;`,
// without `<?php`) is accepted too: "<?php " is put before it on its first line.
// The wrapper replaces PHP's `file` wrapper for exactly one open, then restores it.
final class CodeBeakerSource
{
    public static string $code = '';
    /** @var resource|null */
    public $context;
    private int $pos = 0;

    /** Includes $path with $code as its content; variables are the caller's (global). */
    public static function prepare(string $code): void
    {
        self::$code = self::tagged($code);
        stream_wrapper_unregister('file');
        stream_wrapper_register('file', self::class);
    }

    /** The code as a PHP file: "<?php " put before it on its first line if it has no tag. */
    public static function tagged(string $code): string
    {
        // Already a PHP file (`<?php`, `<?=`, or a shebang line before it): as written.
        if (preg_match('/\A(#![^\n]*\n)?\s*<\?(php|=)/i', $code)) {
            return $code;
        }
        return '<?php ' . $code;
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        stream_wrapper_restore('file');
        $this->pos = 0;
        return true;
    }

    public function stream_read(int $count): string|false
    {
        $chunk = (string) substr(self::$code, $this->pos, $count);
        $this->pos += strlen($chunk);
        return $chunk;
    }

    public function stream_eof(): bool
    {
        return $this->pos >= strlen(self::$code);
    }

    public function stream_stat(): array|false
    {
        return ['size' => strlen(self::$code)];
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }

    public function stream_close(): void
    {
    }

    /** The JSON text of `$result`, or null after a clear stderr line (not serializable). */
    public static function encode(mixed $result): ?string
    {
        try {
            return json_encode(
                $result,
                JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR
            );
        } catch (\Throwable $e) {
            fwrite(STDERR, 'codebeaker: result is not JSON-serializable: ' . $e->getMessage() . "\n");
            return null;
        }
    }
}

// Must NOT compile: SerializeToUtf8Bytes and GetGuid are outside the subset, so mcs reports
// "does not contain a definition for" instead of the program misbehaving at run time.
using System;
using System.Text.Json;

class Unsupported
{
    static void Main()
    {
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(new { a = 1 });
        Guid g = JsonDocument.Parse("\"00000000-0000-0000-0000-000000000000\"").RootElement.GetGuid();
        Console.WriteLine(bytes.Length + " " + g);
    }
}

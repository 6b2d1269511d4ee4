// CodeBeaker instance template for C# ("isolation": "program"): languages/csharp/edge.cs's contract,
// but the resident runner (languages/csharp/Launcher.cs) calls the generated Main once per
// input, so `input_data`, `result` and every top-level variable are fresh each call while
// static fields persist. The lines above the code match languages/csharp/edge.cs (same error lines).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

var inputJson = __CodeBeakerCall.Input;
var input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);

{{code}}

var outputJson = JsonSerializer.Serialize(result);
__CodeBeakerCall.Result = outputJson;

// The runner's side of a call: it sets Input (the input line) before it calls Main and
// reads Result after; Result stays null when the code returned before setting it.
internal static class __CodeBeakerCall
{
    public static string Input { get; set; }
    public static string Result { get; set; }
}

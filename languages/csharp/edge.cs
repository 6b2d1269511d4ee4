// CodeBeaker wrapper for C#, the same contract as Loopai's: top-level statements, with
// `input_data` a System.Text.Json JsonElement. The user's code declares `result`. The
// gateway's translator (agent/src/csharp.rs) turns this into a Main for Mono's compiler;
// System.Text.Json is CodeBeaker's subset for Mono (docs/csharp.md).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

var inputJson = File.ReadAllText("/workspace/input.json");
var input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);

{{code}}

var outputJson = JsonSerializer.Serialize(result);
File.WriteAllText("/workspace/output.json", outputJson);

// CodeBeaker wrapper for C# (Mono): the user's code is the body of Main and declares
// `result`. `input_data` is the parsed JSON as JavaScriptSerializer gives it: objects are
// Dictionary<string, object>, arrays object[], numbers int/long/decimal. (`dynamic` was
// tried: Mono's binder adds about a second of CPU to every invocation.)
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Web.Script.Serialization;

public static class Program
{
    public static void Main()
    {
        var __cbJson = new JavaScriptSerializer { MaxJsonLength = int.MaxValue, RecursionLimit = 512 };
        object input_data = __cbJson.DeserializeObject(File.ReadAllText("/workspace/input.json", Encoding.UTF8));

{{code}}

        File.WriteAllText("/workspace/output.json", __cbJson.Serialize(result), new UTF8Encoding(false));
    }
}

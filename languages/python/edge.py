# CodeBeaker wrapper for Python: the user's code runs at top level between the two halves.
import json as __cb_json

with open("/workspace/input.json", encoding="utf-8") as __cb_f:
    input_data = __cb_json.load(__cb_f)

{{code}}

if "result" in globals():
    try:
        __cb_text = __cb_json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError) as __cb_e:
        import sys as __cb_sys
        print("codebeaker: result is not JSON-serializable:", __cb_e, file=__cb_sys.stderr)
        __cb_text = repr(result)
    with open("/workspace/output.json", "w", encoding="utf-8") as __cb_f:
        __cb_f.write(__cb_text)

// CodeBeaker wrapper for Go: the user's code is the body of main() and declares `result`.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The user cannot add imports, so the common packages are imported here and marked used.
var _ = fmt.Sprint
var _ = math.Abs
var _ = sort.Ints
var _ = strconv.Itoa
var _ = strings.ToUpper

func main() {
	var input_data map[string]interface{}
	__cbRaw, __cbErr := os.ReadFile("/workspace/input.json")
	if __cbErr == nil {
		__cbErr = json.Unmarshal(__cbRaw, &input_data)
	}
	if __cbErr != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: input is not a JSON object:", __cbErr)
		os.Exit(1)
	}
	_ = input_data

{{code}}

	__cbOut, __cbErr := json.Marshal(result)
	if __cbErr != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: result is not JSON-serializable:", __cbErr)
		__cbOut = []byte(fmt.Sprint(result))
	}
	if __cbErr := os.WriteFile("/workspace/output.json", __cbOut, 0o644); __cbErr != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: cannot write output:", __cbErr)
		os.Exit(1)
	}
}

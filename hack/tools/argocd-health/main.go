// Command argocd-health runs Argo CD resource health checks (health.lua) the way Argo CD runs them, so that
// Marina's checks under manifests/argocd can be tested without an Argo CD installation.
//
//	argocd-health test [-libs=both|argocd-cm|builtin] [-q] RESOURCE_CUSTOMIZATIONS...
//	    in a tree laid out as Argo CD's resource_customizations (<group>/<Kind>/health.lua, health_test.yaml,
//	    testdata/), each case of every health_test.yaml is run on its inputPath through the script Argo CD picks
//	    for that object's group and kind, and the result compared with healthStatus ({status, message}), as
//	    Argo CD's own TestLuaHealthScript does; exit 1 when any differs.
//	argocd-health eval [-libs=argocd-cm|builtin] SCRIPT [OBJECT_FILE...]
//	    the health of each object (YAML or JSON, a List's items one by one; stdin without files), one JSON
//	    line each: {"kind", "namespace", "name", "status", "message"} or {"error"}.
//
// The Lua environment is Argo CD's (util/lua/lua.go of argoproj/argo-cd, v3): gopher-lua with the standard
// libraries skipped unless open libraries are enabled, then the package, base and table libraries opened, the
// restricted os library (time and date only, through require("os"); no os global), a one-second deadline,
// the object as the global `obj` (converted value by value as Argo CD's decodeValue does), and the returned
// table turned into {status, message} through gopher-json and encoding/json. A status Argo CD does not know
// becomes Unknown / "Lua returned an invalid health status"; nil or an empty table is an empty result. Run
// over Argo CD's own resource_customizations (-libs=builtin), it gives the result each of their cases expects.
//
// Library modes (-libs): "argocd-cm" is how Argo CD runs a script installed through argocd-cm
// (resource.customizations.health.<group>_<kind>) unless resource.customizations.useOpenLibs.<group>_<kind>
// is set: no string, math, io, os or coroutine libraries. "builtin" opens them, as for Argo CD's built-in
// scripts and in its own test. "both" (the default for test) runs each case in both and requires the same result.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// HealthStatus is gitops-engine's health.HealthStatus.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The codes isValidHealthStatusCode accepts.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

const (
	invalidHealthStatus = "Lua returned an invalid health status"
	scriptDeadline      = time.Second
)

// run executes script with obj as the global `obj`, as Argo CD's VM.runLua does; openLibs is VM.UseOpenLibs.
func run(obj map[string]any, script string, openLibs bool) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openRestrictedOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, loadRestrictedOs)
	ctx, cancel := context.WithTimeout(context.Background(), scriptDeadline)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = "" // Argo CD drops the stack trace from run errors
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// health is VM.ExecuteHealthLua.
func health(obj map[string]any, script string, openLibs bool) (*HealthStatus, error) {
	l, err := run(obj, script, openLibs)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	returned := l.Get(-1)
	switch returned.Type() {
	case lua.LTNil:
		return &HealthStatus{}, nil
	case lua.LTTable:
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returned.Type().String())
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return nil, err
	}
	result := &HealthStatus{}
	if err := json.Unmarshal(encoded, result); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Value == "array" { // an empty table encodes as []
			return &HealthStatus{}, nil
		}
		return nil, err
	}
	if !validStatus[result.Status] {
		return &HealthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return result, nil
}

// decodeValue converts an object's value as Argo CD's decodeValue does (json.Number becomes a string, any type
// it does not know nil).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(decodeValue(l, item))
		}
		return array
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return table
	}
	return lua.LNil
}

// The restricted os library: time and date, nothing that reads or changes the machine.
var restrictedOs = map[string]lua.LGFunction{"time": osTime, "date": osDate}

// openRestrictedOs registers the functions as Argo CD's OpenSafeOs does: into the table module, which gopher-lua
// leaves unchanged once the table library is open, so `os` is no global and `require("os")` is the way to them.
func openRestrictedOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, restrictedOs))
	return 1
}

func loadRestrictedOs(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), restrictedOs))
	return 1
}

func intField(t *lua.LTable, key string, fallback int) int {
	if n, ok := t.RawGetString(key).(lua.LNumber); ok {
		return int(n)
	}
	return fallback
}

// osTime: now, or the time a {year, month, day, hour, min, sec} table names (local time, hour 12 by default).
func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	t := l.CheckTable(1)
	moment := time.Date(intField(t, "year", -1), time.Month(intField(t, "month", -1)), intField(t, "day", -1),
		intField(t, "hour", 12), intField(t, "min", 0), intField(t, "sec", 0), 0, time.Local)
	l.Push(lua.LNumber(moment.Unix()))
	return 1
}

// The strftime conversions Argo CD's os.date knows, as Go layouts.
var dateLayouts = map[byte]string{
	'a': "mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'P': "pm", 'S': "05",
	'x': "15/04/05", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

// osDate: date([format [, time]]); "!" first means UTC, "*t" a table of the fields.
func osDate(l *lua.LState) int {
	moment, format := time.Now(), "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
		if strings.HasPrefix(format, "!") {
			moment, format = moment.UTC(), strings.TrimLeft(format, "!")
		}
		if l.GetTop() >= 2 {
			moment = time.Unix(l.CheckInt64(2), 0)
		}
		if strings.HasPrefix(format, "*t") {
			t := l.NewTable()
			for key, value := range map[string]int{
				"year": moment.Year(), "month": int(moment.Month()), "day": moment.Day(), "hour": moment.Hour(),
				"min": moment.Minute(), "sec": moment.Second(), "wday": int(moment.Weekday()) + 1, "yday": 0,
			} {
				t.RawSetString(key, lua.LNumber(value))
			}
			t.RawSetString("isdst", lua.LFalse)
			l.Push(t)
			return 1
		}
	}
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c != '%' || i == len(format)-1:
			out.WriteByte(c)
		case format[i+1] == '%':
			out.WriteByte('%')
			i++
		default:
			i++
			if layout, ok := dateLayouts[format[i]]; ok {
				out.WriteString(moment.Format(layout))
			} else if format[i] == 'w' {
				out.WriteString(strconv.Itoa(int(moment.Weekday())))
			} else {
				out.WriteByte('%')
				out.WriteByte(format[i])
			}
		}
	}
	l.Push(lua.LString(out.String()))
	return 1
}

// readObjects: the objects in a YAML or JSON stream (documents separated by ---; a List gives its items).
func readObjects(data []byte) ([]map[string]any, error) {
	var objects []map[string]any
	for _, document := range splitDocuments(data) {
		var obj map[string]any
		if err := yaml.Unmarshal(document, &obj); err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(obj["kind"]), "List") {
			for _, item := range items {
				if m, ok := item.(map[string]any); ok {
					objects = append(objects, m)
				}
			}
			continue
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func splitDocuments(data []byte) [][]byte {
	var documents [][]byte
	var current bytes.Buffer
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.TrimRight(line, " \t") == "---" {
			documents = append(documents, append([]byte(nil), current.Bytes()...))
			current.Reset()
			continue
		}
		current.WriteString(line)
		current.WriteByte('\n')
	}
	return append(documents, current.Bytes())
}

// readObject reads a test's input the way Argo CD's test does (sigs.k8s.io/yaml into a map).
func readObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

func libModes(name string, allowBoth bool) ([]bool, error) {
	switch name {
	case "argocd-cm":
		return []bool{false}, nil
	case "builtin":
		return []bool{true}, nil
	case "both":
		if allowBoth {
			return []bool{false, true}, nil
		}
	}
	return nil, fmt.Errorf("-libs must be argocd-cm, builtin%s, not %q", map[bool]string{true: " or both"}[allowBoth], name)
}

func modeName(openLibs bool) string {
	if openLibs {
		return "builtin"
	}
	return "argocd-cm"
}

// testFolder runs the cases of one folder's health_test.yaml; it returns (cases passed, failure descriptions).
// As in Argo CD's TestLuaHealthScript, each object is run through the script Argo CD would pick for its group
// and kind (GetHealthScript over the same resource_customizations tree), not necessarily the folder's own.
func testFolder(index *scriptIndex, folder string, modes []bool, out io.Writer) (int, []string, error) {
	data, err := os.ReadFile(filepath.Join(folder, "health_test.yaml"))
	if err != nil {
		return 0, nil, err
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(data, &tests); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", filepath.Join(folder, "health_test.yaml"), err)
	}
	if len(tests.Tests) == 0 {
		return 0, nil, fmt.Errorf("%s: no tests", filepath.Join(folder, "health_test.yaml"))
	}
	passed := 0
	var failures []string
	for _, test := range tests.Tests {
		name := filepath.Join(folder, test.InputPath)
		obj, err := readObject(name)
		if err != nil {
			return passed, failures, err
		}
		script, err := index.find(groupKindPath(obj))
		if err != nil {
			return passed, failures, fmt.Errorf("%s: %w", name, err)
		}
		for _, openLibs := range modes {
			got, err := health(obj, script, openLibs)
			label := fmt.Sprintf("%s [%s]", name, modeName(openLibs))
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("%s: error: %v", label, err))
			case *got != test.HealthStatus:
				failures = append(failures, fmt.Sprintf("%s:\n    want %s\n    got  %s", label, show(test.HealthStatus), show(*got)))
			default:
				passed++
				fmt.Fprintf(out, "ok   %s: %s\n", label, show(*got))
			}
		}
	}
	return passed, failures, nil
}

// scriptIndex: the health.lua files of one resource_customizations tree by key (<group>/<Kind>, or <Kind> for
// the core group); keys with `_` are Argo CD's wildcards.
type scriptIndex struct {
	root     string
	exact    map[string]string
	wildcard []string // sorted, as Argo CD tries them
}

func newScriptIndex(root string) (*scriptIndex, []string, error) {
	index := &scriptIndex{root: root, exact: map[string]string{}}
	var folders []string
	err := filepath.WalkDir(root, func(name string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.IsDir() || entry.Name() != "health.lua" {
			return nil
		}
		folder := filepath.Dir(name)
		key, err := filepath.Rel(root, folder)
		if err != nil {
			return err
		}
		key = filepath.ToSlash(key)
		folders = append(folders, folder)
		if strings.Contains(key, "_") {
			index.wildcard = append(index.wildcard, key)
		} else {
			index.exact[key] = folder
		}
		return nil
	})
	sort.Strings(index.wildcard)
	sort.Strings(folders)
	return index, folders, err
}

func (index *scriptIndex) find(key string) (string, error) {
	folder, ok := index.exact[key]
	if !ok {
		for _, pattern := range index.wildcard {
			if matched, err := path.Match(strings.ReplaceAll(pattern, "_", "*"), key); err == nil && matched {
				folder, ok = filepath.Join(index.root, filepath.FromSlash(pattern)), true
				break
			}
		}
	}
	if !ok {
		return "", fmt.Errorf("no health.lua for %s under %s", key, index.root)
	}
	script, err := os.ReadFile(filepath.Join(folder, "health.lua"))
	return string(script), err
}

// groupKindPath is the object's <group>/<Kind> (just <Kind> for the core group), Argo CD's script key.
func groupKindPath(obj map[string]any) string {
	apiVersion, kind := fmt.Sprint(obj["apiVersion"]), fmt.Sprint(obj["kind"])
	if slash := strings.LastIndex(apiVersion, "/"); slash >= 0 {
		return apiVersion[:slash] + "/" + kind
	}
	return kind
}

func show(h HealthStatus) string {
	data, _ := json.Marshal(h)
	return string(data)
}

func testCommand(args []string) int {
	flags := flag.NewFlagSet("test", flag.ExitOnError)
	libs := flags.String("libs", "both", "argocd-cm (standard libraries closed), builtin (open) or both")
	quiet := flags.Bool("q", false, "print only failures and the summary")
	_ = flags.Parse(args)
	modes, err := libModes(*libs, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if flags.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health test [-libs=both|argocd-cm|builtin] [-q] RESOURCE_CUSTOMIZATIONS...")
		return 2
	}
	var out io.Writer = os.Stdout
	if *quiet {
		out = io.Discard
	}
	total, failed, count := 0, 0, 0
	for _, root := range flags.Args() {
		index, folders, err := newScriptIndex(root)
		if err == nil && len(folders) == 0 {
			err = errors.New("no health.lua in it")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", root, err)
			return 2
		}
		for _, folder := range folders {
			passed, failures, err := testFolder(index, folder, modes, out)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			total += passed + len(failures)
			failed += len(failures)
			for _, failure := range failures {
				fmt.Printf("FAIL %s\n", failure)
			}
		}
		count += len(folders)
	}
	fmt.Printf("%d of %d health checks as expected (%d folders)\n", total-failed, total, count)
	if failed > 0 {
		return 1
	}
	return 0
}

func evalCommand(args []string) int {
	flags := flag.NewFlagSet("eval", flag.ExitOnError)
	libs := flags.String("libs", "argocd-cm", "argocd-cm (standard libraries closed) or builtin (open)")
	_ = flags.Parse(args)
	modes, err := libModes(*libs, false)
	if err != nil || flags.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health eval [-libs=argocd-cm|builtin] SCRIPT [OBJECT_FILE...]", err)
		return 2
	}
	script, err := os.ReadFile(flags.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var inputs [][]byte
	if flags.NArg() == 1 {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		inputs = append(inputs, data)
	}
	for _, path := range flags.Args()[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		inputs = append(inputs, data)
	}
	encoder := json.NewEncoder(os.Stdout)
	code := 0
	for _, data := range inputs {
		objects, err := readObjects(data)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, obj := range objects {
			line := map[string]string{"kind": fmt.Sprint(obj["kind"])}
			if meta, ok := obj["metadata"].(map[string]any); ok {
				for _, key := range []string{"name", "namespace"} {
					if value, ok := meta[key].(string); ok {
						line[key] = value
					}
				}
			}
			got, err := health(obj, string(script), modes[0])
			if err != nil {
				line["error"] = err.Error()
				code = 1
			} else {
				line["status"], line["message"] = got.Status, got.Message
			}
			_ = encoder.Encode(line)
		}
	}
	return code
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health test|eval ... (see the source's comment)")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "test":
		os.Exit(testCommand(os.Args[2:]))
	case "eval":
		os.Exit(evalCommand(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: test or eval\n", os.Args[1])
		os.Exit(2)
	}
}

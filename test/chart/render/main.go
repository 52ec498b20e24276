// Command render renders a Helm chart the way `helm template` does, for the chart tests.
//
// Helm itself cannot be installed on the project's machines, but its template engine is
// nothing more than Go's text/template with the sprig function library plus a handful of
// built-ins. Both Go and sprig come from Debian (golang-go, golang-github-masterminds-sprig-dev),
// so this program re-creates the parts of Helm's engine the chart can touch, with the same
// libraries Helm uses:
//
//   - values: chart values.yaml coalesced with -f files exactly like Helm (later files win,
//     maps merge, lists replace, an explicit null removes a default), parsed with ghodss/yaml
//     (the library sigs.k8s.io/yaml was forked from), so numbers are float64 as in Helm;
//   - values.schema.json: validated with xeipuuv/gojsonschema, the validator Helm 3 used up to
//     3.17, after coalescing, with Helm's error wording;
//   - templates: every file under templates/ parsed into one template set named
//     "<chart>/templates/<path>", `_`-prefixed files are partials, NOTES.txt is rendered
//     separately, missingkey=zero and "<no value>" removed (or missingkey=error with --strict);
//   - functions: sprig's TxtFuncMap minus env/expandenv, plus Helm's include, tpl, required,
//     toYaml, fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray. `lookup` is left out
//     on purpose: the chart must not depend on cluster state, so using it is a parse error;
//   - objects: .Values .Release .Chart .Capabilities .Files .Template;
//   - output: each file is split into documents like Helm's SplitManifests and every document
//     is converted to JSON with the same YAML→JSON conversion kubectl and the API machinery
//     use, so the tests see the objects the API server would see (YAML 1.1 booleans included).
//
// Build (offline, GOPATH mode against Debian's /usr/share/gocode):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o render main.go
//
// In GOPATH mode sprig and semver live at their unversioned paths, hence the imports below
// without "/v3" (Debian ships sprig 3.2.3 and semver 3.x there).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
	"github.com/xeipuuv/gojsonschema"
)

// recursionMaxNums mirrors Helm's limit on nested include calls of the same template.
const recursionMaxNums = 1000

// Metadata mirrors the fields of Helm's chart.Metadata that a Chart.yaml may carry, so
// `.Chart.X` resolves (or fails) exactly as in Helm.
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// Maintainer mirrors Helm's chart.Maintainer.
type Maintainer struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

// KubeVersion mirrors Helm's chartutil.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv *KubeVersion) String() string     { return kv.Version }
func (kv *KubeVersion) GitVersion() string { return kv.Version }

// VersionSet mirrors Helm's chartutil.VersionSet.
type VersionSet []string

// Has reports whether an API version ("group/version" or "group/version/Kind") is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities mirrors the parts of Helm's chartutil.Capabilities a template can read.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// Files mirrors Helm's .Files (non-template files of the chart).
type Files map[string][]byte

// Get returns a file's content as a string, or "" when absent (as Helm does).
func (f Files) Get(name string) string { return string(f.GetBytes(name)) }

// GetBytes returns a file's content, or nil when absent.
func (f Files) GetBytes(name string) []byte {
	if b, ok := f[name]; ok {
		return b
	}
	return nil
}

// Lines splits a file into lines.
func (f Files) Lines(name string) []string {
	if f == nil || f[name] == nil {
		return []string{}
	}
	return strings.Split(string(f[name]), "\n")
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	chartDir    string
	valueFiles  multiFlag
	releaseName string
	namespace   string
	strict      bool
	output      string
	kubeVersion string
	apiVersions multiFlag
}

// Document is one rendered manifest document.
type Document struct {
	Source string          `json:"source"`
	Index  int             `json:"index"`
	YAML   string          `json:"yaml"`
	Object json.RawMessage `json:"object"`
}

// Result is what the program prints with --output json.
type Result struct {
	Chart     Metadata               `json:"chart"`
	Values    map[string]interface{} `json:"values"`
	Documents []Document             `json:"documents"`
	Notes     string                 `json:"notes"`
}

func main() {
	var o options
	flag.StringVar(&o.chartDir, "chart", "", "chart directory (required)")
	flag.Var(&o.valueFiles, "f", "values file to merge over the chart's values.yaml (repeatable)")
	flag.StringVar(&o.releaseName, "release-name", "pg-reflinker", ".Release.Name")
	flag.StringVar(&o.namespace, "namespace", "default", ".Release.Namespace")
	flag.BoolVar(&o.strict, "strict", false, "missingkey=error: referencing an undefined value fails (like `helm lint --strict`)")
	flag.StringVar(&o.output, "output", "json", "json (documents, notes, values) or yaml (like `helm template`)")
	flag.StringVar(&o.kubeVersion, "kube-version", "v1.34.0", ".Capabilities.KubeVersion")
	flag.Var(&o.apiVersions, "api-versions", "extra .Capabilities.APIVersions entry (repeatable)")
	flag.Parse()
	if o.chartDir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: render --chart DIR [-f values.yaml]... [--release-name N] [--namespace NS] [--strict] [--output json|yaml]")
		os.Exit(2)
	}
	res, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	if o.output == "yaml" {
		for _, d := range res.Documents {
			fmt.Printf("---\n# Source: %s\n%s\n", d.Source, strings.TrimSpace(d.YAML))
		}
		if res.Notes != "" {
			fmt.Printf("\nNOTES:\n%s\n", res.Notes)
		}
		return
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
	os.Stdout.Write([]byte("\n"))
}

func run(o options) (*Result, error) {
	meta, err := loadMetadata(o.chartDir)
	if err != nil {
		return nil, err
	}
	defaults, err := readValuesFile(filepath.Join(o.chartDir, "values.yaml"), true)
	if err != nil {
		return nil, err
	}
	user := map[string]interface{}{}
	for _, f := range o.valueFiles {
		v, err := readValuesFile(f, false)
		if err != nil {
			return nil, err
		}
		user = mergeMaps(user, v)
	}
	values := coalesceValues(user, defaults)

	schema, err := os.ReadFile(filepath.Join(o.chartDir, "values.schema.json"))
	if err == nil {
		if err := validateAgainstSchema(values, schema); err != nil {
			return nil, fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", meta.Name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	templates, files, err := loadChartFiles(o.chartDir, meta.Name)
	if err != nil {
		return nil, err
	}
	kv, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return nil, err
	}
	caps := &Capabilities{
		KubeVersion: kv,
		APIVersions: append(VersionSet{"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1", "coordination.k8s.io/v1", "policy/v1"}, o.apiVersions...),
		HelmVersion: map[string]string{"version": "v3-compatible (test renderer)"},
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name":      o.releaseName,
			"Namespace": o.namespace,
			"Service":   "Helm",
			"IsInstall": true,
			"IsUpgrade": false,
			"Revision":  1,
		},
		"Chart":        meta,
		"Capabilities": caps,
		"Files":        files,
	}
	rendered, err := renderAll(templates, top, meta.Name, o.strict)
	if err != nil {
		return nil, err
	}

	res := &Result{Chart: *meta, Values: values, Documents: []Document{}}
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	notesName := path.Join(meta.Name, "templates", "NOTES.txt")
	for _, name := range names {
		content := rendered[name]
		if name == notesName {
			res.Notes = content
			continue
		}
		if isPartial(name) {
			continue
		}
		for i, doc := range splitManifests(content) {
			obj, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("YAML parse error on %s (document %d): %v", name, i, err)
			}
			if string(obj) == "null" {
				continue // a document holding only comments
			}
			res.Documents = append(res.Documents, Document{Source: name, Index: i, YAML: doc, Object: obj})
		}
	}
	return res, nil
}

func loadMetadata(dir string) (*Metadata, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml file is missing: %v", err)
	}
	meta := &Metadata{}
	if err := yaml.Unmarshal(raw, meta); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %v", err)
	}
	// The checks Helm's Metadata.Validate performs on load.
	switch {
	case meta.APIVersion == "":
		return nil, errors.New("validation: chart.metadata.apiVersion is required")
	case meta.APIVersion != "v1" && meta.APIVersion != "v2":
		return nil, fmt.Errorf("validation: chart.metadata.apiVersion %q is not valid", meta.APIVersion)
	case meta.Name == "":
		return nil, errors.New("validation: chart.metadata.name is required")
	case meta.Name != filepath.Base(meta.Name):
		return nil, fmt.Errorf("chart.metadata.name %q is invalid", meta.Name)
	case meta.Version == "":
		return nil, errors.New("validation: chart.metadata.version is required")
	case meta.Type != "" && meta.Type != "application" && meta.Type != "library":
		return nil, errors.New("chart.metadata.type must be application or library")
	}
	if _, err := semver.NewVersion(meta.Version); err != nil {
		return nil, fmt.Errorf("validation: chart.metadata.version %q is invalid", meta.Version)
	}
	if len(meta.Dependencies) > 0 {
		return nil, errors.New("this test renderer does not implement chart dependencies")
	}
	return meta, nil
}

// readValuesFile reads a values file the way Helm's chartutil.ReadValues does.
func readValuesFile(file string, optional bool) (map[string]interface{}, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return map[string]interface{}{}, nil
		}
		return nil, err
	}
	vals := map[string]interface{}{}
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %v", file, err)
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// mergeMaps merges b over a like Helm's handling of several -f files.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// coalesceValues fills user values with chart defaults like Helm's CoalesceValues: a user
// value wins, maps are merged key by key, and a user null deletes the default.
func coalesceValues(user, defaults map[string]interface{}) map[string]interface{} {
	dst := deepCopy(user).(map[string]interface{})
	coalesceTables(dst, defaults)
	return dst
}

func coalesceTables(dst, src map[string]interface{}) {
	for key, val := range src {
		dv, present := dst[key]
		switch {
		case present && dv == nil:
			delete(dst, key)
		case !present:
			dst[key] = deepCopy(val)
		default:
			dm, dIsMap := dv.(map[string]interface{})
			sm, sIsMap := val.(map[string]interface{})
			if dIsMap && sIsMap {
				coalesceTables(dm, sm)
			}
			// Otherwise the user's value stands (Helm only warns when a table meets a scalar).
		}
	}
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	default:
		return v
	}
}

func validateAgainstSchema(values map[string]interface{}, schema []byte) error {
	valuesYAML, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	valuesJSON, err := yaml.YAMLToJSON(valuesYAML)
	if err != nil {
		return err
	}
	if bytes.Equal(valuesJSON, []byte("null")) {
		valuesJSON = []byte("{}")
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json cannot be used: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var sb strings.Builder
	for _, desc := range result.Errors() {
		sb.WriteString(fmt.Sprintf("- %s\n", desc))
	}
	return errors.New(sb.String())
}

// loadChartFiles returns the templates (keyed "<chart>/templates/<rel>") and the chart's other
// files (.Files), which exclude Chart.yaml, values.yaml, values.schema.json and charts/.
func loadChartFiles(dir, chartName string) (map[string]string, Files, error) {
	templates := map[string]string{}
	files := Files{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[path.Join(chartName, rel)] = string(raw)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore":
		default:
			files[rel] = raw
		}
		return nil
	})
	return templates, files, err
}

func parseKubeVersion(s string) (KubeVersion, error) {
	v, err := semver.NewVersion(s)
	if err != nil {
		return KubeVersion{}, fmt.Errorf("invalid --kube-version %q: %v", s, err)
	}
	return KubeVersion{Version: "v" + v.String(), Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor())}, nil
}

func isPartial(name string) bool { return strings.HasPrefix(path.Base(name), "_") }

// funcMap returns sprig's text functions, without the non-hermetic ones Helm removes, plus
// Helm's own. include and tpl are placeholders until bound to a template set.
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required":      required,
		"include":       func(string, interface{}) string { return "not implemented" },
		"tpl":           func(string, interface{}) interface{} { return "not implemented" },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		// Helm swallows the error so a template can use toYaml inline.
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func required(warn string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(warn)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warn)
	}
	return val, nil
}

// renderAll parses every template into one set and executes each non-partial file, like
// Helm's engine.render.
func renderAll(templates map[string]string, top map[string]interface{}, chartName string, strict bool) (map[string]string, error) {
	missing := "missingkey=zero"
	if strict {
		missing = "missingkey=error"
	}
	t := template.New("gotpl").Option(missing)
	fm := funcMap()
	included := map[string]int{}
	bindFuncs(t, fm, included, strict)

	// Parse in a stable order; later definitions of the same name win, as in Helm.
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := t.New(n).Parse(templates[n]); err != nil {
			return nil, cleanupParseError(n, err)
		}
	}

	out := map[string]string{}
	for _, n := range names {
		if isPartial(n) {
			continue
		}
		vals := make(map[string]interface{}, len(top)+1)
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Join(chartName, "templates")}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, n, vals); err != nil {
			return nil, cleanupExecError(n, err)
		}
		s := buf.String()
		if !strict {
			s = strings.ReplaceAll(s, "<no value>", "")
		}
		out[n] = s
	}
	return out, nil
}

// bindFuncs installs include and tpl closed over the template set t.
func bindFuncs(t *template.Template, fm template.FuncMap, included map[string]int, strict bool) {
	fm["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > recursionMaxNums {
			return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	fm["tpl"] = func(text string, vals interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		inner := template.FuncMap{}
		for k, v := range fm {
			inner[k] = v
		}
		bindFuncs(clone, inner, included, strict)
		name := "tpl"
		if m, ok := vals.(map[string]interface{}); ok {
			if tm, ok := m["Template"].(map[string]interface{}); ok {
				if n, ok := tm["Name"].(string); ok {
					name = n
				}
			}
		}
		if _, err := clone.New(name).Parse(text); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := clone.ExecuteTemplate(&buf, name, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		s := buf.String()
		if !strict {
			s = strings.ReplaceAll(s, "<no value>", "")
		}
		return s, nil
	}
	t.Funcs(fm)
}

func cleanupParseError(name string, err error) error {
	return fmt.Errorf("parse error in %s: %v", name, err)
}

var (
	execErrRe      = regexp.MustCompile(`(?s)^template: (.*?): executing "(.*?)" at <(.*?)>: (.*)$`)
	errorCallingRe = regexp.MustCompile(`(?s)^error calling [A-Za-z_][A-Za-z0-9_]*: (.*)$`)
)

// cleanupExecError keeps the message of fail/required readable, as Helm does.
func cleanupExecError(name string, err error) error {
	msg := err.Error()
	if m := execErrRe.FindStringSubmatch(msg); m != nil {
		// Unwrap nested "error calling include: template: ..." chains to the innermost cause.
		// and drop "error calling fail: " style prefixes, as Helm's cleanupExecError does.
		inner := m[4]
		for {
			mm := errorCallingRe.FindStringSubmatch(inner)
			if mm == nil {
				break
			}
			inner = mm[1]
			if m2 := execErrRe.FindStringSubmatch(inner); m2 != nil {
				inner = m2[4]
			}
		}
		return fmt.Errorf("execution error at (%s): %s\n  (%s)", m[1], inner, msg)
	}
	return fmt.Errorf("render error in %s: %s", name, msg)
}

var sep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// splitManifests splits a rendered file on YAML document separators like Helm's
// releaseutil.SplitManifests, dropping empty documents.
func splitManifests(bigFile string) []string {
	docs := []string{}
	bigFileTmp := strings.TrimSpace(bigFile)
	for _, d := range sep.Split(bigFileTmp, -1) {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		docs = append(docs, d+"\n")
	}
	return docs
}

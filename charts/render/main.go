// Command render renders a Helm 3 chart the way `helm template` does, without Helm, so the chart
// can be tested on machines where Helm cannot be installed.
//
// Helm's template engine is Go's text/template plus the sprig functions plus a few of Helm's own
// (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup). This program builds the same
// context (.Values, .Release, .Chart, .Capabilities, .Template, .Files), merges values files like
// `helm template -f`, validates the merged values against values.schema.json as Helm does, and
// prints every rendered template as one multi-document YAML stream with `# Source:` comments.
//
// It needs only Debian's packages (golang-go, golang-github-masterminds-sprig-dev,
// golang-k8s-sigs-yaml-dev, golang-github-xeipuuv-gojsonschema-dev) and builds in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run ./charts/render charts/ringress -f charts/ringress/ci/x.yaml
//
// Flags: -f FILE (repeatable), -name RELEASE, -namespace NS, -kube-version vX.Y.Z,
// -api-versions group/version (repeatable), -notes (print the rendered NOTES.txt instead).
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
	"sort"
	"strings"
	"text/template"

	semver "github.com/Masterminds/semver" // GOPATH mode: the /v3 module lives here
	sprig "github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

// Helm's limit on nested `include` calls, which stops a template including itself forever.
const maxIncludeDepth = 1000

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var valueFiles, apiVersions multiFlag
	flag.Var(&valueFiles, "f", "values file merged over the chart's values.yaml (repeatable, later wins)")
	flag.Var(&apiVersions, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	name := flag.String("name", "ringress", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.31.0", "Kubernetes version for .Capabilities.KubeVersion")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	// Accept flags after the chart path too, like helm: `render CHART -f a.yaml`.
	args := os.Args[1:]
	var positional []string
	for len(args) > 0 {
		if err := flag.CommandLine.Parse(args); err != nil {
			os.Exit(2)
		}
		args = flag.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	if len(positional) != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [flags] CHART_DIR [-f values.yaml]...")
		os.Exit(2)
	}
	out, err := render(positional[0], options{
		valueFiles: valueFiles, apiVersions: apiVersions, release: *name,
		namespace: *namespace, kubeVersion: *kubeVersion, notes: *notes,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

type options struct {
	valueFiles, apiVersions []string
	release, namespace      string
	kubeVersion             string
	notes                   bool
}

func render(chartDir string, opt options) (string, error) {
	chart, err := loadChart(chartDir)
	if err != nil {
		return "", err
	}
	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range opt.valueFiles {
		override, err := readYAMLMap(f)
		if err != nil {
			return "", err
		}
		mergeValues(values, override)
	}
	if err := validateSchema(chartDir, values); err != nil {
		return "", err
	}
	caps, err := capabilities(opt.kubeVersion, opt.apiVersions)
	if err != nil {
		return "", err
	}
	files, templates, err := loadFiles(chartDir)
	if err != nil {
		return "", err
	}
	chartName := chart["Name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": opt.release, "Namespace": opt.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": caps,
		"Files":        files,
	}

	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(funcMap(root))
	names := make([]string, 0, len(templates))
	for rel := range templates {
		names = append(names, rel)
	}
	sort.Strings(names)
	for _, rel := range names {
		full := path.Join(chartName, rel)
		if _, err := root.New(full).Parse(templates[rel]); err != nil {
			return "", err
		}
	}

	var out strings.Builder
	for _, rel := range names {
		base := path.Base(rel)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != opt.notes {
			continue
		}
		full := path.Join(chartName, rel)
		ctx := make(map[string]interface{}, len(top)+1)
		for k, v := range top {
			ctx[k] = v
		}
		ctx["Template"] = map[string]interface{}{"Name": full, "BasePath": path.Join(chartName, "templates")}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, ctx); err != nil {
			return "", err
		}
		// Helm replaces the zero value that missingkey=zero prints for absent map keys.
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if isNotes {
			out.WriteString(text)
		} else {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.TrimRight(text, "\n"))
		}
	}
	return out.String(), nil
}

// funcMap is sprig's text functions without the environment readers (as in Helm) plus Helm's own.
// include and tpl need the template set itself, hence the argument.
func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	depth := 0
	f["include"] = func(name string, data interface{}) (string, error) {
		if depth++; depth > maxIncludeDepth {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		defer func() { depth-- }()
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		if t, err = t.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if s, ok := val.(string); val == nil || (ok && s == "") {
			return val, errors.New(msg)
		}
		return val, nil
	}
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return "" // Helm swallows the error the same way
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// `helm template` has no cluster: lookup finds nothing.
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

// loadChart reads Chart.yaml into the shape templates see as .Chart (Go field names, as in Helm).
func loadChart(dir string) (map[string]interface{}, error) {
	raw, err := readYAMLMap(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if raw["apiVersion"] != "v2" {
		return nil, fmt.Errorf("Chart.yaml: apiVersion must be v2, got %v", raw["apiVersion"])
	}
	for _, key := range []string{"name", "version"} {
		if s, _ := raw[key].(string); s == "" {
			return nil, fmt.Errorf("Chart.yaml: %s is required", key)
		}
	}
	if _, err := semver.StrictNewVersion(raw["version"].(string)); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %v", raw["version"], err)
	}
	fields := map[string]string{
		"apiVersion": "APIVersion", "name": "Name", "version": "Version", "kubeVersion": "KubeVersion",
		"description": "Description", "type": "Type", "keywords": "Keywords", "home": "Home",
		"sources": "Sources", "dependencies": "Dependencies", "maintainers": "Maintainers",
		"icon": "Icon", "appVersion": "AppVersion", "deprecated": "Deprecated", "annotations": "Annotations",
	}
	chart := map[string]interface{}{}
	for key, value := range raw {
		field, ok := fields[key]
		if !ok {
			return nil, fmt.Errorf("Chart.yaml: unknown field %q", key)
		}
		chart[field] = value
	}
	return chart, nil
}

// files is .Files: every chart file outside templates/, readable with .Files.Get.
type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }
func (f files) Lines(name string) []string  { return strings.Split(string(f[name]), "\n") }
func (f files) Glob(pattern string) files {
	out := files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

// loadFiles splits the chart's files into .Files and templates (keyed by slash path from the chart root).
func loadFiles(dir string) (files, map[string]string, error) {
	fs := files{}
	templates := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[rel] = string(data)
		case rel != "Chart.yaml":
			fs[rel] = data
		}
		return nil
	})
	return fs, templates, err
}

type kubeVersion struct{ Version, Major, Minor, GitVersion string }

func (k kubeVersion) String() string { return k.Version }

// versionSet is .Capabilities.APIVersions.
type versionSet []string

func (v versionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

func capabilities(version string, extra []string) (map[string]interface{}, error) {
	v, err := semver.NewVersion(version)
	if err != nil {
		return nil, fmt.Errorf("-kube-version %q: %v", version, err)
	}
	apis := versionSet{"v1", "apps/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
		"rbac.authorization.k8s.io/v1", "discovery.k8s.io/v1", "networking.k8s.io/v1"}
	apis = append(apis, extra...)
	return map[string]interface{}{
		"KubeVersion": kubeVersion{
			Version: "v" + v.String(), GitVersion: "v" + v.String(),
			Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor()),
		},
		"APIVersions": apis,
		"HelmVersion": map[string]interface{}{"Version": "v3.15.0"},
	}, nil
}

// readYAMLMap reads YAML the way Helm does (sigs.k8s.io/yaml: via JSON, so numbers are float64).
func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return m, nil
}

// mergeValues deep-merges override into base like `helm -f`: maps merge key by key, anything else
// replaces, and an explicit null removes the key (Helm's way to unset a default).
func mergeValues(base, override map[string]interface{}) {
	for k, v := range override {
		if v == nil {
			delete(base, k)
			continue
		}
		bm, bok := base[k].(map[string]interface{})
		om, ook := v.(map[string]interface{})
		if bok && ook {
			mergeValues(bm, om)
		} else {
			base[k] = v
		}
	}
}

// validateSchema checks the merged values against values.schema.json, if present, as Helm does.
func validateSchema(chartDir string, values map[string]interface{}) error {
	schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewGoLoader(values))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var msg strings.Builder
	msg.WriteString("values don't meet the specifications of the schema(s):")
	for _, e := range result.Errors() {
		fmt.Fprintf(&msg, "\n- %s", e)
	}
	return errors.New(msg.String())
}

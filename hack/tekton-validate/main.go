// Command tekton-validate checks catalog YAML the way the Tekton Pipelines admission webhook
// would: every Task, Pipeline, StepAction, TaskRun and PipelineRun is decoded strictly (unknown
// fields are errors), defaulted with SetDefaults and checked with Validate, using the
// feature flags and defaults of a fresh install (the config maps left empty).
//
// Usage:
//
//	tekton-validate [-v] [-flag key=value]... PATH...
//
// PATH is a YAML file or a directory searched recursively for *.yaml and *.yml. Each error is
// printed as "FILE: KIND/NAME: message". The exit status is 1 when any error was found and 2
// on a usage error.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"
)

// resource is what the webhook needs from every Tekton type: defaulting and validation.
type resource interface {
	apis.Defaultable
	apis.Validatable
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
	} `json:"metadata"`
}

// newResource returns an empty object for a Tekton apiVersion/kind, or nil for other kinds.
func newResource(apiVersion, kind string) resource {
	switch apiVersion + "/" + kind {
	case "tekton.dev/v1/Task":
		return &v1.Task{}
	case "tekton.dev/v1/Pipeline":
		return &v1.Pipeline{}
	case "tekton.dev/v1/TaskRun":
		return &v1.TaskRun{}
	case "tekton.dev/v1/PipelineRun":
		return &v1.PipelineRun{}
	case "tekton.dev/v1beta1/Task":
		return &v1beta1.Task{}
	case "tekton.dev/v1beta1/Pipeline":
		return &v1beta1.Pipeline{}
	case "tekton.dev/v1beta1/TaskRun":
		return &v1beta1.TaskRun{}
	case "tekton.dev/v1beta1/PipelineRun":
		return &v1beta1.PipelineRun{}
	case "tekton.dev/v1beta1/StepAction":
		return &v1beta1.StepAction{}
	case "tekton.dev/v1alpha1/StepAction":
		return &v1alpha1.StepAction{}
	}
	return nil
}

type flagList []string

func (f *flagList) String() string     { return strings.Join(*f, ",") }
func (f *flagList) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	verbose := flag.Bool("v", false, "print every validated resource, not only errors")
	var flags flagList
	flag.Var(&flags, "flag", "a feature-flags entry key=value (repeatable); default: a fresh install's flags")
	showVersion := flag.Bool("version", false, "print the tektoncd/pipeline version compiled in")
	flag.Parse()
	if *showVersion {
		fmt.Println(pipelineVersion())
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tekton-validate [-v] [-flag key=value]... PATH...")
		os.Exit(2)
	}
	ctx, err := webhookContext(flags)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tekton-validate: %v\n", err)
		os.Exit(2)
	}
	files, err := collect(flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "tekton-validate: %v\n", err)
		os.Exit(2)
	}
	failures, checked := 0, 0
	for _, file := range files {
		n, errs := validateFile(ctx, file, *verbose)
		checked += n
		for _, e := range errs {
			fmt.Printf("%s: %s\n", file, e)
		}
		failures += len(errs)
	}
	fmt.Printf("tekton-validate (tektoncd/pipeline %s): %d resources in %d files, %d errors\n",
		pipelineVersion(), checked, len(files), failures)
	if failures > 0 {
		os.Exit(1)
	}
}

// webhookContext builds the context the admission webhook validates in: the config store's
// defaults and feature flags (as on a fresh install, optionally overridden) and "in create".
func webhookContext(overrides []string) (context.Context, error) {
	m := map[string]string{}
	for _, kv := range overrides {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("-flag %q: want key=value", kv)
		}
		m[k] = v
	}
	ff, err := config.NewFeatureFlagsFromMap(m)
	if err != nil {
		return nil, fmt.Errorf("feature flags: %w", err)
	}
	defaults, err := config.NewDefaultsFromMap(map[string]string{})
	if err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	cfg := config.FromContextOrDefaults(context.Background())
	cfg.FeatureFlags = ff
	cfg.Defaults = defaults
	ctx := config.ToContext(context.Background(), cfg)
	return apis.WithinCreate(ctx), nil
}

func pipelineVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/tektoncd/pipeline" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func collect(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // e.g. catalog/.hub: data, not Tekton resources
			}
			ext := filepath.Ext(path)
			if !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

// splitDocuments splits a YAML stream on "---" separator lines, keeping non-empty documents.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// validateFile returns how many Tekton resources it checked and one message per error.
func validateFile(ctx context.Context, file string, verbose bool) (int, []string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, []string{err.Error()}
	}
	var errs []string
	checked := 0
	for i, doc := range splitDocuments(data) {
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			errs = append(errs, fmt.Sprintf("document %d: not YAML: %v", i+1, err))
			continue
		}
		name := tm.Metadata.Name
		if name == "" {
			name = tm.Metadata.GenerateName + "*"
		}
		label := fmt.Sprintf("%s/%s", tm.Kind, name)
		if tm.APIVersion == "" || tm.Kind == "" {
			errs = append(errs, fmt.Sprintf("document %d: missing apiVersion or kind", i+1))
			continue
		}
		obj := newResource(tm.APIVersion, tm.Kind)
		if obj == nil {
			if strings.HasPrefix(tm.APIVersion, "tekton.dev/") {
				errs = append(errs, fmt.Sprintf("%s: unknown Tekton type %s %s", label, tm.APIVersion, tm.Kind))
			} else if verbose {
				fmt.Printf("%s: %s: skipped (%s is not a Tekton type)\n", file, label, tm.APIVersion)
			}
			continue
		}
		checked++
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			errs = append(errs, fmt.Sprintf("%s: decoding (unknown or mistyped field): %v", label, err))
			continue
		}
		if msg := check(ctx, obj); msg != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", label, msg))
			continue
		}
		if verbose {
			fmt.Printf("%s: %s: ok\n", file, label)
		}
	}
	return checked, errs
}

// check runs SetDefaults then Validate, as the defaulting and validating webhooks do, and turns a
// panic in either (a malformed object) into an error instead of a crash.
func check(ctx context.Context, obj resource) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprintf("panic during validation: %v", r)
		}
	}()
	obj.SetDefaults(ctx)
	if fe := obj.Validate(ctx); fe != nil {
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(fe.Error()), "\n") {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(strings.TrimSpace(line))
		}
		return b.String()
	}
	return ""
}

// Command tekton-render lets the local e2e executor (tests/e2e/executor) run Tekton
// TaskRuns and PipelineRuns without a cluster while leaving every Tekton decision to
// Tekton's own code (github.com/tektoncd/pipeline, pinned in go.mod):
//
//   - "taskrun": defaults and validation of the TaskRun and its Task (the admission
//     webhook's SetDefaults/Validate), Task and StepAction resolution, parameter,
//     context, result and workspace substitution, and finally the Pod the TaskRun
//     reconciler would create (pod.Builder.Build).
//   - "taskrun-status": the TaskRun status (results, step results, conditions) that
//     Tekton derives from the finished Pod (pod.MakeTaskRunStatus).
//   - "pipelinerun": one pass of the PipelineRun reconciler: which TaskRuns to create
//     next (DAG, when expressions, result references, finally), the skipped tasks, and
//     the PipelineRun's condition and results.
//
// It reads one JSON request on stdin and writes one JSON response on stdout. A request
// the executor cannot honour is answered with {"error": ...} naming the field.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	"github.com/tektoncd/pipeline/pkg/pod"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/pipelinespec"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/volumeclaim"
	"github.com/tektoncd/pipeline/pkg/workspace"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/kmeta"
	"sigs.k8s.io/yaml"
)

// Request is what the executor sends.
type Request struct {
	Op            string              `json:"op"`
	Namespace     string              `json:"namespace"`
	Files         []string            `json:"files"`
	FeatureFlags  map[string]string   `json:"featureFlags"`
	ImageCommands map[string][]string `json:"imageCommands"`
	TaskRun       *v1.TaskRun         `json:"taskRun,omitempty"`
	Pod           *corev1.Pod         `json:"pod,omitempty"`
	PipelineRun   *v1.PipelineRun     `json:"pipelineRun,omitempty"`
	TaskRuns      []*v1.TaskRun       `json:"taskRuns,omitempty"`
}

// Response is what tekton-render answers.
type Response struct {
	Error       string          `json:"error,omitempty"`
	TaskRun     *v1.TaskRun     `json:"taskRun,omitempty"`
	Pod         *corev1.Pod     `json:"pod,omitempty"`
	PipelineRun *v1.PipelineRun `json:"pipelineRun,omitempty"`
	Create      []*v1.TaskRun   `json:"create,omitempty"`
	Done        bool            `json:"done,omitempty"`
	Loaded      []string        `json:"loaded,omitempty"`
}

// Images the Pod refers to for Tekton's own containers; the executor runs them with
// the locally built entrypoint binary and the host's shell.
var images = pipeline.Images{
	EntrypointImage:        "tekton-local/entrypoint",
	SidecarLogResultsImage: "tekton-local/sidecarlogresults",
	NopImage:               "tekton-local/nop",
	ShellImage:             "tekton-local/shell",
	ShellImageWin:          "tekton-local/shell-windows",
	WorkingDirInitImage:    "tekton-local/workingdirinit",
}

type env struct {
	ctx    context.Context
	ns     string
	tekton *tektonfake.Clientset
	kube   *k8sfake.Clientset
	loaded []string
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Println("usage: tekton-render < request.json > response.json (see tests/e2e/executor)")
		return
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil {
		fail(fmt.Errorf("request: %w", err))
	}
	resp, err := handle(req)
	if err != nil {
		resp = &Response{Error: err.Error()}
	}
	out, err := json.Marshal(resp)
	if err != nil {
		fail(err)
	}
	_, _ = os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "tekton-render: %v\n", err)
	os.Exit(2)
}

func handle(req Request) (*Response, error) {
	e, err := newEnv(req)
	if err != nil {
		return nil, err
	}
	switch req.Op {
	case "load":
		return &Response{Loaded: e.loaded}, nil
	case "taskrun":
		if req.TaskRun == nil {
			return nil, errors.New("taskrun: no taskRun in the request")
		}
		return e.renderTaskRun(req.TaskRun, req.ImageCommands)
	case "taskrun-status":
		if req.TaskRun == nil || req.Pod == nil {
			return nil, errors.New("taskrun-status: needs taskRun and pod")
		}
		return e.taskRunStatus(req.TaskRun, req.Pod)
	case "pipelinerun":
		if req.PipelineRun == nil {
			return nil, errors.New("pipelinerun: no pipelineRun in the request")
		}
		return e.reconcilePipelineRun(req.PipelineRun, req.TaskRuns)
	default:
		return nil, fmt.Errorf("unknown op %q", req.Op)
	}
}

func newEnv(req Request) (*env, error) {
	ns := req.Namespace
	if ns == "" {
		ns = "default"
	}
	flags := map[string]string{}
	for k, v := range req.FeatureFlags {
		flags[k] = v
	}
	ff, err := config.NewFeatureFlagsFromMap(flags)
	if err != nil {
		return nil, fmt.Errorf("featureFlags: %w", err)
	}
	defaults, err := config.NewDefaultsFromMap(map[string]string{})
	if err != nil {
		return nil, err
	}
	ctx := config.ToContext(context.Background(), &config.Config{
		FeatureFlags: ff,
		Defaults:     defaults,
	})
	e := &env{ctx: ctx, ns: ns}
	var objects []runtime.Object
	kubeObjects := []runtime.Object{}
	accounts := sets.New[string]()
	for _, path := range req.Files {
		objs, names, sas, err := e.loadFile(path)
		if err != nil {
			return nil, err
		}
		objects = append(objects, objs...)
		e.loaded = append(e.loaded, names...)
		for _, sa := range sas {
			accounts.Insert(sa.Name)
			kubeObjects = append(kubeObjects, sa)
		}
	}
	if !accounts.Has("default") {
		kubeObjects = append(kubeObjects, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	}
	e.kube = k8sfake.NewSimpleClientset(kubeObjects...)
	e.tekton = tektonfake.NewSimpleClientset(objects...)
	return e, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// loadFile decodes Tasks, Pipelines and StepActions and validates each one as the
// admission webhook does on `kubectl apply`. Other kinds are left to the executor.
func (e *env) loadFile(path string) ([]runtime.Object, []string, []*corev1.ServiceAccount, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	var objs []runtime.Object
	var names []string
	var accounts []*corev1.ServiceAccount
	for i, doc := range splitYAML(data) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if string(js) == "null" {
			continue
		}
		var tm typeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		where := fmt.Sprintf("%s: %s %q", path, tm.Kind, tm.Metadata.Name)
		var obj interface {
			runtime.Object
			apis.Defaultable
			apis.Validatable
			metav1.Object
		}
		switch {
		case tm.Kind == "Task" && tm.APIVersion == "tekton.dev/v1":
			obj = &v1.Task{}
		case tm.Kind == "Pipeline" && tm.APIVersion == "tekton.dev/v1":
			obj = &v1.Pipeline{}
		case tm.Kind == "StepAction" && tm.APIVersion == "tekton.dev/v1beta1":
			obj = &v1beta1.StepAction{}
		case tm.Kind == "ServiceAccount" && tm.APIVersion == "v1":
			sa := &corev1.ServiceAccount{}
			if err := json.Unmarshal(js, sa); err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			sa.Namespace = e.ns
			accounts = append(accounts, sa)
			continue
		case tm.Kind == "Task" || tm.Kind == "Pipeline" || tm.Kind == "StepAction":
			return nil, nil, nil, fmt.Errorf("%s: apiVersion %s is not supported by the local executor (use tekton.dev/v1, or v1beta1 for StepAction)", where, tm.APIVersion)
		default:
			continue
		}
		if err := strictUnmarshal(js, obj); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		obj.SetNamespace(e.ns)
		obj.SetDefaults(apis.WithinCreate(e.ctx))
		if ferr := obj.Validate(apis.WithinCreate(e.ctx)); ferr != nil {
			return nil, nil, nil, fmt.Errorf("%s: admission validation failed: %w", where, ferr)
		}
		objs = append(objs, obj)
		names = append(names, fmt.Sprintf("%s/%s", tm.Kind, tm.Metadata.Name))
	}
	return objs, names, accounts, nil
}

// strictUnmarshal refuses fields Tekton's types do not have, as the API server does.
func strictUnmarshal(js []byte, into interface{}) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, " \t\r") == "---" {
			docs = append(docs, []byte(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	docs = append(docs, []byte(strings.Join(cur, "\n")))
	return docs
}

// renderTaskRun follows the TaskRun reconciler's prepare() and createPod().
func (e *env) renderTaskRun(tr *v1.TaskRun, imageCommands map[string][]string) (*Response, error) {
	ctx := e.ctx
	if tr.Namespace == "" {
		tr.Namespace = e.ns
	}
	if tr.UID == "" {
		tr.UID = types.UID(fmt.Sprintf("local-%s", tr.Name))
	}
	tr.SetDefaults(apis.WithinCreate(ctx))
	if ferr := tr.Validate(apis.WithinCreate(ctx)); ferr != nil {
		return nil, fmt.Errorf("TaskRun %s: admission validation failed: %w", tr.Name, ferr)
	}
	if len(tr.Spec.StepSpecs) > 0 || len(tr.Spec.SidecarSpecs) > 0 {
		return nil, fmt.Errorf("TaskRun %s: spec.stepSpecs/sidecarSpecs are not supported by the local executor", tr.Name)
	}
	// A volumeClaimTemplate becomes a PVC named as the reconciler names it.
	for i, wb := range tr.Spec.Workspaces {
		if wb.VolumeClaimTemplate != nil {
			claim := volumeclaim.GeneratePVCNameFromWorkspaceBinding(wb.VolumeClaimTemplate.Name, wb, *kmeta.NewControllerRef(tr))
			tr.Spec.Workspaces[i].VolumeClaimTemplate = nil
			tr.Spec.Workspaces[i].PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}
		}
	}

	getTask := resources.GetTaskFuncFromTaskRun(ctx, e.kube, e.tekton, nil, tr, nil)
	taskMeta, taskSpec, err := resources.GetTaskData(ctx, tr, getTask)
	if err != nil {
		return nil, fmt.Errorf("TaskRun %s: resolving the Task: %w", tr.Name, err)
	}
	steps, err := resources.GetStepActionsData(ctx, *taskSpec, tr, e.tekton, e.kube, nil)
	if err != nil {
		return nil, fmt.Errorf("TaskRun %s: resolving StepActions: %w", tr.Name, err)
	}
	taskSpec.Steps = steps
	if len(taskSpec.Sidecars) > 0 {
		return nil, fmt.Errorf("TaskRun %s: spec.sidecars are not supported by the local executor", tr.Name)
	}
	rtr := &resources.ResolvedTask{TaskName: taskMeta.Name, TaskSpec: taskSpec, Kind: resources.GetTaskKind(tr)}
	if err := taskrun.ValidateResolvedTask(ctx, tr.Spec.Params, &v1.Matrix{}, rtr); err != nil {
		return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
	}
	if config.FromContextOrDefaults(ctx).FeatureFlags.EnableParamEnum {
		if err := taskrun.ValidateEnumParam(ctx, tr.Spec.Params, rtr.TaskSpec.Params); err != nil {
			return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
		}
	}
	if err := resources.ValidateParamArrayIndex(rtr.TaskSpec, tr.Spec.Params); err != nil {
		return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
	}
	var decls []v1.WorkspaceDeclaration
	if tr.Spec.TaskSpec != nil {
		for _, ws := range tr.Spec.Workspaces {
			decls = append(decls, v1.WorkspaceDeclaration{Name: ws.Name})
		}
	}
	decls = append(decls, taskSpec.Workspaces...)
	if err := workspace.ValidateBindings(ctx, decls, tr.Spec.Workspaces); err != nil {
		return nil, fmt.Errorf("TaskRun %s: workspaces: %w", tr.Name, err)
	}
	tr.Status.TaskSpec = taskSpec.DeepCopy()

	// The reconciler's applyParamsContextsResultsAndWorkspaces, step by step.
	wsVolumes := workspace.CreateVolumes(tr.Spec.Workspaces)
	ts := taskSpec.DeepCopy()
	var defaults []v1.ParamSpec
	defaults = append(defaults, ts.Params...)
	ts = resources.ApplyParameters(ts, tr, defaults...)
	ts = resources.ApplyContexts(ts, rtr.TaskName, tr)
	ts = resources.ApplyResults(ts)
	ts = resources.ApplyArtifacts(ts)
	ts = resources.ApplyStepExitCodePath(ts)
	declared := sets.New[string]()
	for _, w := range ts.Workspaces {
		declared.Insert(w.Name)
	}
	for _, w := range tr.Spec.Workspaces {
		if !declared.Has(w.Name) {
			ts.Workspaces = append(ts.Workspaces, v1.WorkspaceDeclaration{Name: w.Name})
		}
	}
	ts = resources.ApplyWorkspaces(ctx, ts, ts.Workspaces, tr.Spec.Workspaces, wsVolumes)

	// createPod.
	if err := v1.ValidateUsageOfDeclaredParameters(ctx, ts.Steps, ts.Params); err != nil {
		return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
	}
	if err := ts.Validate(ctx); err != nil {
		return nil, fmt.Errorf("TaskRun %s: the substituted Task is invalid: %w", tr.Name, err)
	}
	ts, err = workspace.Apply(ctx, *ts, tr.Spec.Workspaces, wsVolumes)
	if err != nil {
		return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
	}
	ts = resources.ApplyCredentialsPath(ts, pipeline.CredsDir)

	// Tekton asks the registry for the ENTRYPOINT of an image when a step has neither
	// command nor script. That lookup needs the network; the executor names the
	// entrypoints it knows (e.g. kaniko's /kaniko/executor) and refuses the rest.
	for i, s := range ts.Steps {
		if len(s.Command) == 0 && s.Script == "" {
			cmd, ok := imageCommands[s.Image]
			if !ok {
				return nil, fmt.Errorf("TaskRun %s: steps[%d] %q (image %s) has neither command nor script; Tekton would read the image's ENTRYPOINT from its registry, which the local executor cannot do", tr.Name, i, s.Name, s.Image)
			}
			ts.Steps[i].Command = cmd
		}
	}
	builder := pod.Builder{Images: images, KubeClient: e.kube}
	p, err := builder.Build(ctx, tr, *ts)
	if err != nil {
		return nil, fmt.Errorf("TaskRun %s: building the pod: %w", tr.Name, err)
	}
	tr.Status.PodName = p.Name
	return &Response{TaskRun: tr, Pod: p}, nil
}

func (e *env) taskRunStatus(tr *v1.TaskRun, p *corev1.Pod) (*Response, error) {
	logger := zap.NewNop().Sugar()
	status, err := pod.MakeTaskRunStatus(e.ctx, logger, *tr, p, e.kube, tr.Status.TaskSpec)
	if err != nil {
		return nil, fmt.Errorf("TaskRun %s: status: %w", tr.Name, err)
	}
	tr.Status = status
	return &Response{TaskRun: tr}, nil
}

// reconcilePipelineRun is one pass of the PipelineRun reconciler's reconcile(), given the
// TaskRuns created so far (finished ones carry their status).
func (e *env) reconcilePipelineRun(pr *v1.PipelineRun, taskRuns []*v1.TaskRun) (*Response, error) {
	ctx := e.ctx
	logger := zap.NewNop().Sugar()
	if pr.Namespace == "" {
		pr.Namespace = e.ns
	}
	if pr.UID == "" {
		pr.UID = types.UID(fmt.Sprintf("local-%s", pr.Name))
	}
	pr.SetDefaults(apis.WithinCreate(ctx))
	if ferr := pr.Validate(apis.WithinCreate(ctx)); ferr != nil {
		return nil, fmt.Errorf("PipelineRun %s: admission validation failed: %w", pr.Name, ferr)
	}
	if pr.Status.StartTime == nil {
		now := metav1.Now()
		pr.Status.StartTime = &now
	}
	byName := map[string]*v1.TaskRun{}
	pr.Status.ChildReferences = nil
	for _, tr := range taskRuns {
		byName[tr.Name] = tr
		pr.Status.ChildReferences = append(pr.Status.ChildReferences, v1.ChildStatusReference{
			TypeMeta:         runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
			Name:             tr.Name,
			PipelineTaskName: tr.Labels[pipeline.PipelineTaskLabelKey],
		})
	}

	getPipeline := prresources.GetPipelineFunc(ctx, e.kube, e.tekton, nil, pr, nil)
	pipelineMeta, pipelineSpec, err := pipelinespec.GetPipelineData(ctx, pr, getPipeline)
	if err != nil {
		return nil, fmt.Errorf("PipelineRun %s: resolving the Pipeline: %w", pr.Name, err)
	}
	d, err := dag.Build(v1.PipelineTaskList(pipelineSpec.Tasks), v1.PipelineTaskList(pipelineSpec.Tasks).Deps())
	if err != nil {
		return nil, fmt.Errorf("PipelineRun %s: the Pipeline DAG is invalid: %w", pr.Name, err)
	}
	dfinally, err := dag.Build(v1.PipelineTaskList(pipelineSpec.Finally), map[string][]string{})
	if err != nil {
		return nil, fmt.Errorf("PipelineRun %s: the finally DAG is invalid: %w", pr.Name, err)
	}
	if err := pipelineSpec.Validate(ctx); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: invalid Pipeline spec: %w", pr.Name, err)
	}
	if err := prresources.ValidateRequiredParametersProvided(&pipelineSpec.Params, &pr.Spec.Params); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	if err := prresources.ValidateParamTypesMatching(pipelineSpec, pr); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	if err := prresources.ValidateObjectParamRequiredKeys(pipelineSpec.Params, pr.Spec.Params); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	if err := prresources.ValidateParamArrayIndex(pipelineSpec, pr.Spec.Params); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	if err := prresources.ValidateWorkspaceBindings(pipelineSpec, pr); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	if err := prresources.ValidateTaskRunSpecs(pipelineSpec, pr); err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	prresources.ApplyParametersToWorkspaceBindings(pr)
	pipelineSpec, err = prresources.ApplyParameters(pipelineSpec, pr)
	if err != nil {
		return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
	}
	pipelineSpec = prresources.ApplyContexts(pipelineSpec, pipelineMeta.Name, pr)
	pipelineSpec = prresources.ApplyWorkspaces(pipelineSpec, pr)
	pr.Status.PipelineSpec = pipelineSpec

	tasks := append([]v1.PipelineTask{}, pipelineSpec.Tasks...)
	tasks = append(tasks, pipelineSpec.Finally...)
	started := sets.New[string]()
	for _, c := range pr.Status.ChildReferences {
		started.Insert(c.PipelineTaskName)
	}
	var ran, notStarted []v1.PipelineTask
	for _, t := range tasks {
		if t.Matrix != nil {
			return nil, fmt.Errorf("PipelineRun %s: pipelineTask %q: matrix is not supported by the local executor", pr.Name, t.Name)
		}
		if t.PipelineRef != nil || t.PipelineSpec != nil {
			return nil, fmt.Errorf("PipelineRun %s: pipelineTask %q: pipelines in pipelines are not supported by the local executor", pr.Name, t.Name)
		}
		if started.Has(t.Name) {
			ran = append(ran, t)
		} else {
			notStarted = append(notStarted, t)
		}
	}
	resolve := func(list []v1.PipelineTask, pst prresources.PipelineRunState) (prresources.PipelineRunState, error) {
		for _, pt := range list {
			trName := prresources.GetTaskRunName(pr.Status.ChildReferences, pt.Name, pr.Name)
			getTask := resources.GetTaskFunc(ctx, e.kube, e.tekton, nil, pr, pt.TaskRef, trName, pr.Namespace, pr.Spec.TaskRunTemplate.ServiceAccountName, nil)
			getTaskRun := func(name string) (*v1.TaskRun, error) {
				if tr, ok := byName[name]; ok {
					return tr, nil
				}
				return nil, notFound(name)
			}
			rpt, err := prresources.ResolvePipelineTask(ctx, *pr, nil, nil, getTask, getTaskRun, nil, pt, pst)
			if err != nil {
				return nil, fmt.Errorf("PipelineRun %s: pipelineTask %q: %w", pr.Name, pt.Name, err)
			}
			if rpt.IsCustomTask() {
				return nil, fmt.Errorf("PipelineRun %s: pipelineTask %q: custom tasks are not supported by the local executor", pr.Name, pt.Name)
			}
			pst = append(pst, rpt)
		}
		return pst, nil
	}
	state, err := resolve(ran, prresources.PipelineRunState{})
	if err != nil {
		return nil, err
	}
	state, err = resolve(notStarted, state)
	if err != nil {
		return nil, err
	}
	facts := &prresources.PipelineRunFacts{
		State:           state,
		SpecStatus:      pr.Spec.Status,
		TasksGraph:      d,
		FinalTasksGraph: dfinally,
		TimeoutsState:   prresources.PipelineRunTimeoutsState{Clock: clock.RealClock{}, StartTime: &pr.Status.StartTime.Time},
	}
	for _, rpt := range facts.State {
		if err := taskrun.ValidateResolvedTask(ctx, rpt.PipelineTask.Params, rpt.PipelineTask.Matrix, rpt.ResolvedTask); err != nil {
			return nil, fmt.Errorf("PipelineRun %s: pipelineTask %q: %w", pr.Name, rpt.PipelineTask.Name, err)
		}
	}
	for _, rpt := range facts.State {
		if err := rpt.EvaluateCEL(); err != nil {
			return nil, fmt.Errorf("PipelineRun %s: CEL: %w", pr.Name, err)
		}
	}
	if facts.State.IsBeforeFirstTaskRun() {
		if err := prresources.ValidatePipelineTaskResults(facts.State); err != nil {
			return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
		}
		if err := prresources.ValidatePipelineResults(pipelineSpec, facts.State); err != nil {
			return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
		}
		if err := prresources.ValidateOptionalWorkspaces(pipelineSpec.Workspaces, facts.State); err != nil {
			return nil, fmt.Errorf("PipelineRun %s: %w", pr.Name, err)
		}
	}

	create, err := e.runNextSchedulableTask(pr, facts)
	if err != nil {
		return nil, err
	}
	facts.ResetSkippedCache()

	after := facts.GetPipelineConditionStatus(ctx, pr, logger, clock.RealClock{})
	switch after.Status {
	case corev1.ConditionTrue:
		pr.Status.MarkSucceeded(after.Reason, after.Message)
	case corev1.ConditionFalse:
		pr.Status.MarkFailed(after.Reason, after.Message)
	default:
		pr.Status.MarkRunning(after.Reason, after.Message)
	}
	pr.Status.ChildReferences = facts.GetChildReferences()
	pr.Status.SkippedTasks = facts.GetSkippedTasks()
	taskStatus := facts.GetPipelineTaskStatus()
	for k, v := range facts.GetPipelineFinalTaskStatus() {
		taskStatus[k] = v
	}
	done := after.Status == corev1.ConditionTrue || after.Status == corev1.ConditionFalse
	if done {
		pr.Status.Results, err = prresources.ApplyTaskResultsToPipelineResults(pipelineSpec.Results, facts.State.GetTaskRunsResults(), facts.State.GetRunsResults(), taskStatus)
		if err != nil {
			pr.Status.MarkFailed(v1.PipelineRunReasonCouldntGetPipelineResult.String(), "Failed to get PipelineResult from TaskRun Results for PipelineRun %s: %s", pr.Name, err)
		}
	}
	return &Response{PipelineRun: pr, Create: create, Done: done}, nil
}

func notFound(name string) error {
	return &apisNotFound{name: name}
}

// apisNotFound satisfies k8s.io/apimachinery's IsNotFound via APIStatus.
type apisNotFound struct{ name string }

func (n *apisNotFound) Error() string { return fmt.Sprintf("taskruns.tekton.dev %q not found", n.name) }
func (n *apisNotFound) Status() metav1.Status {
	return metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: 404, Message: n.Error()}
}

// runNextSchedulableTask mirrors the reconciler's function of the same name, returning
// the TaskRuns it would create instead of creating them.
func (e *env) runNextSchedulableTask(pr *v1.PipelineRun, facts *prresources.PipelineRunFacts) ([]*v1.TaskRun, error) {
	nextRpts, err := facts.DAGExecutionQueue()
	if err != nil {
		return nil, err
	}
	for _, rpt := range nextRpts {
		if err := prresources.CheckMissingResultReferences(facts.State, rpt); err != nil {
			nextRpts = nil
			facts.ValidationFailedTask = append(facts.ValidationFailedTask, rpt)
			if facts.ValidationFailedErrors == nil {
				facts.ValidationFailedErrors = map[string]string{}
			}
			facts.ValidationFailedErrors[rpt.PipelineTask.Name] = err.Error()
		}
	}
	fNext := facts.GetFinalTasks()
	if len(fNext) != 0 {
		prresources.ApplyPipelineTaskStateContext(fNext, facts.GetPipelineTaskStatus())
		for _, rpt := range fNext {
			refs, _, err := prresources.ResolveResultRef(facts.State, rpt)
			if err != nil {
				continue
			}
			prresources.ApplyTaskResults(prresources.PipelineRunState{rpt}, refs)
			if err := rpt.EvaluateCEL(); err != nil {
				return nil, err
			}
			nextRpts = append(nextRpts, rpt)
		}
	}
	if pr.Status.FinallyStartTime == nil && facts.IsFinalTaskStarted() {
		now := metav1.Now()
		pr.Status.FinallyStartTime = &now
	}
	prresources.ApplyResultsToWorkspaceBindings(facts.State.GetTaskRunsResults(), pr)
	var create []*v1.TaskRun
	for _, rpt := range nextRpts {
		if rpt == nil || rpt.Skip(facts).IsSkipped || rpt.IsFinallySkipped(facts).IsSkipped {
			continue
		}
		prresources.PropagateResults(rpt, facts.State)
		if err := prresources.PropagateArtifacts(rpt, facts.State); err != nil {
			return nil, err
		}
		for _, name := range rpt.TaskRunNames {
			tr, err := e.newTaskRun(name, rpt, pr, facts)
			if err != nil {
				return nil, err
			}
			create = append(create, tr)
		}
	}
	return create, nil
}

// newTaskRun mirrors the reconciler's createTaskRun and getTaskrunWorkspaces (the
// affinity assistant and tracing annotations are left out: there is no cluster).
func (e *env) newTaskRun(name string, rpt *prresources.ResolvedPipelineTask, pr *v1.PipelineRun, facts *prresources.PipelineRunFacts) (*v1.TaskRun, error) {
	rpt.PipelineTask = prresources.ApplyPipelineTaskContexts(rpt.PipelineTask, pr.Status, facts)
	spec := pr.GetTaskRunSpec(rpt.PipelineTask.Name)
	labels := map[string]string{}
	for k, v := range pr.Labels {
		labels[k] = v
	}
	labels[pipeline.PipelineRunLabelKey] = pr.Name
	labels[pipeline.PipelineRunUIDLabelKey] = string(pr.UID)
	labels[pipeline.PipelineTaskLabelKey] = rpt.PipelineTask.Name
	if pr.Spec.PipelineRef != nil {
		labels[pipeline.PipelineLabelKey] = pr.Spec.PipelineRef.Name
	}
	if rpt.PipelineTask.TaskSpec != nil {
		for k, v := range rpt.PipelineTask.TaskSpec.Metadata.Labels {
			labels[k] = v
		}
	}
	annotations := map[string]string{}
	for k, v := range pr.Annotations {
		annotations[k] = v
	}
	if rpt.PipelineTask.TaskSpec != nil {
		for k, v := range rpt.PipelineTask.TaskSpec.Metadata.Annotations {
			annotations[k] = v
		}
	}
	if rpt.PipelineTask.OnError == v1.PipelineTaskContinue {
		annotations[v1.PipelineTaskOnErrorAnnotation] = string(v1.PipelineTaskContinue)
	}
	tr := &v1.TaskRun{
		TypeMeta: metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       pr.Namespace,
			UID:             types.UID(fmt.Sprintf("local-%s", name)),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(pr)},
			Labels:          labels,
			Annotations:     annotations,
		},
		Spec: v1.TaskRunSpec{
			Retries:            rpt.PipelineTask.Retries,
			Params:             rpt.PipelineTask.Params,
			ServiceAccountName: spec.ServiceAccountName,
			PodTemplate:        spec.PodTemplate,
			StepSpecs:          spec.StepSpecs,
			SidecarSpecs:       spec.SidecarSpecs,
			ComputeResources:   spec.ComputeResources,
		},
	}
	if rpt.PipelineTask.Timeout != nil {
		tr.Spec.Timeout = rpt.PipelineTask.Timeout
	}
	if spec.Timeout != nil {
		tr.Spec.Timeout = spec.Timeout
	}
	if rpt.ResolvedTask.TaskName != "" {
		tr.Spec.TaskRef = rpt.PipelineTask.TaskRef
	} else if rpt.ResolvedTask.TaskSpec != nil {
		tr.Spec.TaskSpec = rpt.ResolvedTask.TaskSpec
	}
	bindings := map[string]v1.WorkspaceBinding{}
	for _, b := range pr.Spec.Workspaces {
		bindings[b.Name] = b
	}
	if rpt.PipelineTask.TaskSpec != nil {
		used, err := workspace.FindWorkspacesUsedByTask(rpt.PipelineTask.TaskSpec.TaskSpec)
		if err != nil {
			return nil, err
		}
		have := sets.New[string]()
		for _, w := range rpt.PipelineTask.Workspaces {
			have.Insert(w.Name)
		}
		names := sets.List(sets.New[string](used.List()...))
		for _, w := range names {
			if !have.Has(w) {
				rpt.PipelineTask.Workspaces = append(rpt.PipelineTask.Workspaces, v1.WorkspacePipelineTaskBinding{Name: w})
			}
		}
	}
	owner := *kmeta.NewControllerRef(pr)
	for _, ws := range rpt.PipelineTask.Workspaces {
		pipelineWs := ws.Workspace
		if pipelineWs == "" {
			pipelineWs = ws.Name
		}
		b, ok := bindings[pipelineWs]
		if !ok {
			optional := false
			if rpt.ResolvedTask != nil && rpt.ResolvedTask.TaskSpec != nil {
				for _, d := range rpt.ResolvedTask.TaskSpec.Workspaces {
					if d.Name == ws.Name && d.Optional {
						optional = true
					}
				}
			}
			if !optional {
				return nil, fmt.Errorf("expected workspace %q to be provided by pipelinerun for pipeline task %q", pipelineWs, rpt.PipelineTask.Name)
			}
			continue
		}
		var tb v1.WorkspaceBinding
		if b.VolumeClaimTemplate == nil {
			tb = *b.DeepCopy()
		} else {
			// The affinity assistant is disabled locally: one PVC per PipelineRun workspace.
			tb = v1.WorkspaceBinding{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
				ClaimName: volumeclaim.GeneratePVCNameFromWorkspaceBinding(b.VolumeClaimTemplate.Name, b, owner),
			}}
		}
		tb.Name = ws.Name
		tb.SubPath = joinSubPath(b.SubPath, ws.SubPath)
		tr.Spec.Workspaces = append(tr.Spec.Workspaces, tb)
	}
	sort.SliceStable(tr.Spec.Workspaces, func(i, j int) bool { return false })
	return tr, nil
}

func joinSubPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	default:
		return filepath.Join(a, b)
	}
}

// helm-strict-render renders a chart with helm's own template engine (helm.sh/helm/v4/pkg/engine,
// the one `helm template` runs) with Engine.Strict set: text/template's missingkey=error, so a
// template that reads a value that does not exist fails instead of printing nothing. No helm
// command sets Strict (v4.3.2), hence this entry point; loading, value merging and schema
// validation are helm's own functions, called as `helm template` calls them.
//
//	helm-strict-render CHART_DIR RELEASE NAMESPACE [VALUES_FILE...]
//
// Prints {"template path": "rendered text"} as JSON; exits 1 with helm's error otherwise.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/engine"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: helm-strict-render CHART_DIR RELEASE NAMESPACE [VALUES_FILE...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir, release, namespace string, valueFiles []string) error {
	chrt, err := loader.Load(dir)
	if err != nil {
		return err
	}
	given, err := (&values.Options{ValueFiles: valueFiles}).MergeValues(nil)
	if err != nil {
		return err
	}
	options := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := util.ToRenderValuesWithSchemaValidation(chrt, given, options, common.DefaultCapabilities, false)
	if err != nil {
		return err
	}
	rendered, err := engine.Engine{Strict: true}.Render(chrt, top)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rendered)
}

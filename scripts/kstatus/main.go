// kstatus prints the health Flux computes for Kubernetes objects (sigs.k8s.io/cli-utils/pkg/kstatus/status):
// it reads `kubectl get -o json` output (a List or one object) on stdin and prints one line per object,
// `<kind>/<name> <Status> <message>`, Status being InProgress, Current, Failed, Terminating or NotFound.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// apimachinery's json keeps integers as int64, as the API machinery does: encoding/json would make
	// generation and observedGeneration float64, which the unstructured helpers kstatus uses reject.
	var object map[string]interface{}
	if err := json.Unmarshal(data, &object); err != nil {
		fail(err)
	}
	items := []interface{}{object}
	if kind, _ := object["kind"].(string); strings.HasSuffix(kind, "List") {
		items, _ = object["items"].([]interface{})
	}
	for _, item := range items {
		fields, ok := item.(map[string]interface{})
		if !ok {
			fail(fmt.Errorf("an item is not an object: %v", item))
		}
		resource := &unstructured.Unstructured{Object: fields}
		result, err := status.Compute(resource)
		if err != nil {
			fail(fmt.Errorf("%s/%s: %w", resource.GetKind(), resource.GetName(), err))
		}
		fmt.Printf("%s/%s %s %s\n", resource.GetKind(), resource.GetName(), result.Status, result.Message)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}

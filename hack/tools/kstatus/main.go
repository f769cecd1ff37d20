// Command kstatus prints the kstatus of Kubernetes objects, computed by sigs.k8s.io/cli-utils' status.Compute:
// the library Flux (kustomize-controller's health checks), kpt and cli-utils' apply waiters read status with.
//
//	kubectl get datasets -o json | kstatus          # stdin
//	kstatus OBJECT_FILE...                          # YAML or JSON files
//
// Each object (documents separated by ---; a List gives its items) becomes one JSON line:
// {"kind", "namespace", "name", "status", "message"}, status being InProgress, Failed, Current, Terminating,
// NotFound or Unknown; an object kstatus cannot read gives {"error"} and exit code 1.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// objects decodes a stream the way the API machinery does (whole numbers as int64, which kstatus requires for
// generation and observedGeneration).
func objects(data []byte) ([]*unstructured.Unstructured, error) {
	var found []*unstructured.Unstructured
	for _, document := range documents(data) {
		asJSON, err := yaml.YAMLToJSON(document)
		if err != nil {
			return nil, err
		}
		if trimmed := bytes.TrimSpace(asJSON); len(trimmed) == 0 || string(trimmed) == "null" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(asJSON); err != nil {
			// a List decodes as UnstructuredList
			list := &unstructured.UnstructuredList{}
			if listErr := list.UnmarshalJSON(asJSON); listErr != nil {
				return nil, err
			}
			for i := range list.Items {
				found = append(found, &list.Items[i])
			}
			continue
		}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				found = append(found, &list.Items[i])
			}
			continue
		}
		found = append(found, obj)
	}
	return found, nil
}

func documents(data []byte) [][]byte {
	var all [][]byte
	var current bytes.Buffer
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.TrimRight(line, " \t") == "---" {
			all = append(all, append([]byte(nil), current.Bytes()...))
			current.Reset()
			continue
		}
		current.WriteString(line)
		current.WriteByte('\n')
	}
	return append(all, current.Bytes())
}

func main() {
	var inputs [][]byte
	if len(os.Args) == 1 {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		inputs = append(inputs, data)
	}
	for _, path := range os.Args[1:] {
		if path == "-h" || path == "--help" {
			fmt.Fprintln(os.Stderr, "usage: kstatus [OBJECT_FILE...]   (stdin without files); one JSON line per object")
			os.Exit(2)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		inputs = append(inputs, data)
	}
	encoder := json.NewEncoder(os.Stdout)
	code := 0
	for _, data := range inputs {
		found, err := objects(data)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, obj := range found {
			line := map[string]string{"kind": obj.GetKind(), "namespace": obj.GetNamespace(), "name": obj.GetName()}
			result, err := status.Compute(obj)
			if err != nil {
				line["error"] = err.Error()
				code = 1
			} else {
				line["status"], line["message"] = result.Status.String(), result.Message
			}
			_ = encoder.Encode(line)
		}
	}
	os.Exit(code)
}

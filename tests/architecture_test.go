package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// TestArchitecture checks the boundaries of house-style.md by machine: the
// foundation (eventstore, decide, listeners, workqueue, kafkabridge) imports
// neither a slice nor gin, and a bounded context imports no other one.
func TestArchitecture(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/dcbkit/dcbkit/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/dcbkit/dcbkit/"
	foundation := []string{"eventstore", "decide", "gwt", "listeners", "workqueue", "kafkabridge", "migrations"}
	contexts := []string{"slices/cart", "slices/identity"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := strings.TrimPrefix(fields[0], mod), fields[1:]
		for _, f := range foundation {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				checked++
				for _, d := range deps {
					if strings.HasPrefix(d, mod+"slices/") || strings.HasPrefix(d, "github.com/gin-gonic/") {
						t.Errorf("%s depends on %s: the foundation must not know slices or HTTP", pkg, d)
					}
				}
			}
		}
		for _, c := range contexts {
			if pkg == c || strings.HasPrefix(pkg, c+"/") {
				checked++
				for _, d := range deps {
					for _, other := range contexts {
						if other != c && strings.HasPrefix(d, mod+other) {
							t.Errorf("%s depends on %s: bounded contexts share the event store and nothing else", pkg, d)
						}
					}
				}
			}
		}
	}
	if checked < len(foundation)+len(contexts) {
		t.Fatalf("checked only %d packages: is the module layout what this test expects?", checked)
	}
}

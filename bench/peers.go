package main

// crabletUnavailable says why scenario 7 does not run. go-crablet
// (github.com/rodolfodpk/go-crablet, package pkg/dcb) is the Go peer named
// by issue #6; the Go module proxy reachable from the project's machines
// answers 403 ("This module version is not available") for its version list
// and for @latest, so it cannot be required, built or raced here. When it
// becomes available, its figures go beside scenario 1's: conditional
// appends at 1 and 32 writers on the same PostgreSQL server, in a database
// of its own, plus a racing test of two writers with overlapping conditions.
const crabletUnavailable = "github.com/rodolfodpk/go-crablet is not served by the Go module proxy (403 for its version list and @latest)"

// scenarioPeers is scenario 7: peers on the same database. It records why
// it was skipped.
func (b *bench) scenarioPeers() {
	b.progress.printf("7 peers: skipped: %s", crabletUnavailable)
	b.res.add(row{Scenario: "7", Name: "go-crablet conditional append, 1 and 32 writers", Verdict: "SKIPPED",
		Target: "ours ≥ 1.5× at 32", Notes: crabletUnavailable})
}

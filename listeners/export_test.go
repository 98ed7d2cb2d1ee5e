package listeners

import "github.com/dcbkit/dcbkit/eventstore"

// Hooks for the external tests of this package only.

// SimulateCrash makes r, once the context of Run ends, stop without
// releasing its leases, as a killed process would: they expire on their own.
func SimulateCrash(r *Runtime) { r.crashed.Store(true) }

// Attempts returns how many batch transactions r has begun for the listener.
func Attempts(r *Runtime, name string) int64 { return r.byName[name].attempts.Load() }

// Wakes reports whether a notification with payload wakes a listener of q
// at once (true) or only stirs it (false).
func Wakes(q eventstore.Query, payload string) bool {
	return (&runner{types: typesOf(q)}).reads(appendedTypes(payload))
}

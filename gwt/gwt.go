// Package gwt is the Given-When-Then kit for decision tests:
//
//	gwt.For(addItem).Given(CartCreated{…}).When(AddItem{…}).Then(t, CartItemAdded{…})
//	gwt.For(addItem).Given(…).When(…).ThenError(t, ErrCartFull)
//
// A scenario runs as a pure function (the given events pass through the
// registry, the decision's query and its upcasters, exactly as a read would
// hand them over) or, after On(store), against the real event store: the given
// events are appended, the decision runs through decide.Run, and the events it
// stored are read back with its own query.
package gwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
)

// Scenario is a decision with its given events.
type Scenario[S, C any] struct {
	d     decide.Decider[S, C]
	store *eventstore.Store
	given []any
}

// For starts a scenario for d.
func For[S, C any](d decide.Decider[S, C]) Scenario[S, C] {
	return Scenario[S, C]{d: d}
}

// On makes the scenario run against a real store instead of as a pure function.
func (s Scenario[S, C]) On(store *eventstore.Store) Scenario[S, C] {
	s.store = store
	return s
}

// Given sets the events that happened before.
func (s Scenario[S, C]) Given(events ...any) Scenario[S, C] {
	s.given = events
	return s
}

// When sets the command.
func (s Scenario[S, C]) When(cmd C) Outcome[S, C] {
	return Outcome[S, C]{s: s, cmd: cmd}
}

// Outcome is a scenario with its command, ready to be checked.
type Outcome[S, C any] struct {
	s   Scenario[S, C]
	cmd C
}

// Then checks that the decision emits exactly want, in order.
func (o Outcome[S, C]) Then(t testing.TB, want ...any) {
	t.Helper()
	got, err := o.run(t)
	if err != nil {
		t.Fatalf("%s\nwant events:\n%s\ngot error: %v", o.describe(), list(want), err)
	}
	if !o.sameEvents(t, want, got) {
		t.Fatalf("%s\nwant events:\n%s\ngot events:\n%s", o.describe(), list(want), list(got))
	}
}

// sameEvents compares events as they would be stored: type, tags and JSON.
// So 2.50 equals 2.5 in a decimal, and a time equals itself without its
// monotonic clock reading.
func (o Outcome[S, C]) sameEvents(t testing.TB, want, got []any) bool {
	t.Helper()
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		w, err := o.s.d.Events.Encode(want[i])
		if err != nil {
			t.Fatalf("gwt: expected event %d cannot be encoded: %v", i, err)
		}
		g, err := o.s.d.Events.Encode(got[i])
		if err != nil {
			t.Fatalf("gwt: decided event %d cannot be encoded: %v", i, err)
		}
		if w.Type != g.Type || !assert.ObjectsAreEqual(w.Tags, g.Tags) || !jsonEqual(w.Data, g.Data) {
			return false
		}
	}
	return true
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return assert.ObjectsAreEqual(x, y)
}

// ThenError checks that the decision fails with an error matching want
// (errors.Is) and emits nothing.
func (o Outcome[S, C]) ThenError(t testing.TB, want error) {
	t.Helper()
	got, err := o.run(t)
	if !errors.Is(err, want) {
		t.Fatalf("%s\nwant error: %v\ngot error: %v, events:\n%s", o.describe(), want, err, list(got))
	}
}

func (o Outcome[S, C]) run(t testing.TB) ([]any, error) {
	t.Helper()
	if o.s.store != nil {
		return o.runOnStore(t)
	}
	d, query := o.s.d, o.s.d.Query(o.cmd)
	var stored []eventstore.StoredEvent
	for i, v := range o.s.given {
		e, err := d.Events.Encode(v)
		if err != nil {
			t.Fatalf("gwt: given event %d: %v", i, err)
		}
		if query.Matches(e.Type, e.Tags) {
			stored = append(stored, eventstore.StoredEvent{Event: e, Position: int64(i + 1)})
		}
	}
	state, _, err := decide.Fold(d, stored)
	if err != nil {
		t.Fatalf("gwt: fold given events: %v", err)
	}
	return d.Decide(state, o.cmd)
}

func (o Outcome[S, C]) runOnStore(t testing.TB) ([]any, error) {
	t.Helper()
	ctx := context.Background()
	d, store := o.s.d, o.s.store
	var after int64
	if len(o.s.given) > 0 {
		events, err := d.Events.EncodeAll(o.s.given)
		if err != nil {
			t.Fatalf("gwt: given events: %v", err)
		}
		res, err := store.Append(ctx, events, nil)
		if err != nil {
			t.Fatalf("gwt: append given events: %v", err)
		}
		after = res.Position
	}
	res, err := decide.Run(ctx, store, d, o.cmd)
	if err != nil || len(res.Events) == 0 {
		return nil, err
	}
	// Read back what the decision stored: the events of its types and tags
	// after the given ones (ids are fresh in tests, so nobody else's).
	var back eventstore.Query
	for _, v := range res.Events {
		e, err := d.Events.Encode(v)
		if err != nil {
			t.Fatalf("gwt: decided event %T cannot be encoded: %v", v, err)
		}
		back.Items = append(back.Items, eventstore.QueryItem{Types: []string{e.Type}, Tags: e.Tags})
	}
	stored, err := store.Read(ctx, back, eventstore.ReadOptions{From: after + 1})
	if err != nil {
		t.Fatalf("gwt: read back: %v", err)
	}
	got := make([]any, len(stored))
	for i, e := range stored {
		if got[i], err = d.Events.Decode(e); err != nil {
			t.Fatalf("gwt: decode stored event at %d: %v", e.Position, err)
		}
	}
	return got, nil
}

func (o Outcome[S, C]) describe() string {
	return fmt.Sprintf("given:\n%s\nwhen:\n    %T%+v", list(o.s.given), o.cmd, o.cmd)
}

func list(events []any) string {
	if len(events) == 0 {
		return "    (none)"
	}
	lines := make([]string, len(events))
	for i, e := range events {
		lines[i] = fmt.Sprintf("    %T%+v", e, e)
	}
	return strings.Join(lines, "\n")
}

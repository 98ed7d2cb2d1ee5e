// Package decide runs decisions on the event store, without aggregates: read
// the events of a state query, fold them into a state, decide, and append the
// new events on condition that no event matching the same query was appended
// since the read. When another writer got there first, it reads and decides
// again, a bounded number of times.
//
// A decision's state may span several former aggregates (a cart and the
// inventory of the product being added): its query is the union of what the
// rules need, and the append condition protects exactly that.
package decide

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dcbkit/dcbkit/eventstore"
)

// MaxAttempts bounds how often Run reads and decides again after the append
// condition failed.
const MaxAttempts = 10

// ErrConflict is returned when every attempt lost the race to another writer.
// It wraps eventstore.ErrAppendConditionFailed.
var ErrConflict = fmt.Errorf("decide: gave up after %d attempts: %w", MaxAttempts, eventstore.ErrAppendConditionFailed)

// A Decider is one use case's decision: which events it needs, how they fold
// into its state, and what it decides for a command. Evolve and Decide are
// pure: no context, store, clock or random ids (the command carries those).
type Decider[S, C any] struct {
	// Events encodes the decided events and decodes the ones read.
	Events *eventstore.Registry
	// Query is the state query for a command: the narrowest set of types and
	// tags the rules need. It is also the append condition.
	Query func(C) eventstore.Query
	// Evolve folds one event (a registered Go value) into the state. The
	// initial state is S's zero value.
	Evolve func(S, any) S
	// Decide returns the events to append, or a business error, which Run
	// returns unchanged. No events means nothing to do.
	Decide func(S, C) ([]any, error)
}

// Result is what a successful Run appended.
type Result struct {
	// Position of the last appended event; the read position when the
	// decision emitted nothing.
	Position int64
	// Events are the decided events, as given by Decide.
	Events []any
}

// Run executes d for cmd against the store. It returns Decide's error
// unchanged, ErrConflict when every attempt lost the race, and store errors
// wrapped.
func Run[S, C any](ctx context.Context, store *eventstore.Store, d Decider[S, C], cmd C) (Result, error) {
	return run(ctx, d, cmd,
		func(q eventstore.Query) ([]eventstore.StoredEvent, error) {
			return store.Read(ctx, q, eventstore.ReadOptions{})
		},
		func(events []eventstore.Event, cond *eventstore.AppendCondition) (eventstore.AppendResult, error) {
			return store.Append(ctx, events, cond)
		})
}

// RunTx is Run inside the caller's transaction (READ COMMITTED), so that the
// decision commits together with whatever else the transaction writes.
func RunTx[S, C any](ctx context.Context, tx pgx.Tx, store *eventstore.Store, d Decider[S, C], cmd C) (Result, error) {
	return run(ctx, d, cmd,
		func(q eventstore.Query) ([]eventstore.StoredEvent, error) {
			return store.ReadTx(ctx, tx, q, eventstore.ReadOptions{})
		},
		func(events []eventstore.Event, cond *eventstore.AppendCondition) (eventstore.AppendResult, error) {
			return store.AppendTx(ctx, tx, events, cond)
		})
}

func run[S, C any](ctx context.Context, d Decider[S, C], cmd C,
	read func(eventstore.Query) ([]eventstore.StoredEvent, error),
	appendEvents func([]eventstore.Event, *eventstore.AppendCondition) (eventstore.AppendResult, error),
) (Result, error) {
	query := d.Query(cmd)
	for range MaxAttempts {
		stored, err := read(query)
		if err != nil {
			return Result{}, fmt.Errorf("decide: read state: %w", err)
		}
		state, after, err := Fold(d, stored)
		if err != nil {
			return Result{}, err
		}
		decided, err := d.Decide(state, cmd)
		if err != nil {
			return Result{}, err
		}
		if len(decided) == 0 {
			return Result{Position: after}, nil
		}
		events, err := d.Events.EncodeAll(decided)
		if err != nil {
			return Result{}, fmt.Errorf("decide: %w", err)
		}
		res, err := appendEvents(events, &eventstore.AppendCondition{FailIfEventsMatch: query, After: after})
		switch {
		case errors.Is(err, eventstore.ErrAppendConditionFailed):
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			continue
		case err != nil:
			return Result{}, fmt.Errorf("decide: append: %w", err)
		}
		return Result{Position: res.Position, Events: decided}, nil
	}
	return Result{}, ErrConflict
}

// Fold decodes stored events and folds them into d's state. It also returns
// the position the state is consistent at: the last event's, 0 for none.
func Fold[S, C any](d Decider[S, C], stored []eventstore.StoredEvent) (S, int64, error) {
	var state S
	var after int64
	for _, e := range stored {
		v, err := d.Events.Decode(e)
		if err != nil {
			return state, 0, fmt.Errorf("decide: event at position %d: %w", e.Position, err)
		}
		state = d.Evolve(state, v)
		after = e.Position
	}
	return state, after, nil
}

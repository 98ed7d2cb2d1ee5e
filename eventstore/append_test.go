package eventstore_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// fresh returns a tag no other test uses.
func fresh(prefix string) string { return prefix + ":" + uuid.NewString() }

func ev(typ string, tags ...string) eventstore.Event {
	return eventstore.Event{Type: typ, Tags: tags, Data: []byte(`{"n":1}`)}
}

func cond(q eventstore.Query, after int64) *eventstore.AppendCondition {
	return &eventstore.AppendCondition{FailIfEventsMatch: q, After: after}
}

func TestAppendCondition(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	b := fresh("b")
	first, err := s.Append(ctx, []eventstore.Event{ev("Opened", b)}, nil)
	require.NoError(t, err)

	q := query(item{Tags: []string{b}})
	_, err = s.Append(ctx, []eventstore.Event{ev("Changed", b)}, cond(q, 0))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed, "an event matches and no after was given")

	second, err := s.Append(ctx, []eventstore.Event{ev("Changed", b)}, cond(q, first.Position))
	require.NoError(t, err, "nothing matches after the first event")
	require.Greater(t, second.Position, first.Position)

	_, err = s.Append(ctx, []eventstore.Event{ev("Changed", b)}, cond(q, first.Position))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed, "the second event matches after the first")

	_, err = s.Append(ctx, []eventstore.Event{ev("Changed", b)}, cond(query(item{Types: []string{"Closed"}, Tags: []string{b}}), 0))
	require.NoError(t, err, "no event of that type in the boundary")

	_, err = s.Append(ctx, []eventstore.Event{ev("Changed", b)}, cond(query(item{Tags: []string{b, fresh("other")}}), 0))
	require.NoError(t, err, "no event carries both tags")

	head, err := s.Head(ctx)
	require.NoError(t, err)
	_, err = s.Append(ctx, []eventstore.Event{ev("Anything")}, cond(query(), head))
	require.NoError(t, err, "match-all after the head")
	_, err = s.Append(ctx, []eventstore.Event{ev("Anything")}, cond(query(), head))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed, "match-all after the old head")
}

func TestAppendStoresEverything(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	b := fresh("b")
	ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{CorrelationID: "req-1", CausationID: "cmd-1"})
	res, err := s.Append(ctx, []eventstore.Event{
		{ID: ids[0], Type: "One", Tags: []string{b, "dup", "dup"}, Data: []byte("opaque \x00 bytes")},
		{ID: ids[1], Type: "Two", Tags: []string{b}, Metadata: eventstore.Metadata{CorrelationID: "own"}},
		{ID: ids[2], Type: "Three"},
	}, nil)
	require.NoError(t, err)

	got, err := s.Read(context.Background(), query(), eventstore.ReadOptions{From: res.Position - 2})
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, []int64{res.Position - 2, res.Position - 1, res.Position}, []int64{got[0].Position, got[1].Position, got[2].Position})
	require.Equal(t, ids, []uuid.UUID{got[0].ID, got[1].ID, got[2].ID})
	require.Equal(t, []string{b, "dup"}, got[0].Tags, "tags keep their order and lose duplicates")
	require.Equal(t, []byte("opaque \x00 bytes"), got[0].Data)
	require.Equal(t, eventstore.Metadata{CorrelationID: "req-1", CausationID: "cmd-1"}, got[0].Metadata)
	require.Equal(t, eventstore.Metadata{CorrelationID: "own"}, got[1].Metadata, "an event's own metadata wins")
	require.Empty(t, got[2].Tags)
	require.Empty(t, got[2].Data)
	require.False(t, got[0].RecordedAt.IsZero())

	res, err = s.Append(ctx, []eventstore.Event{{Type: "Four"}, {Type: "Five"}}, nil)
	require.NoError(t, err)
	got, err = s.Read(ctx, query(), eventstore.ReadOptions{From: res.Position - 1})
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, e := range got {
		require.NotEqual(t, uuid.Nil, e.ID, "ids are generated")
		require.Equal(t, byte(7), e.ID[6]>>4, "generated ids are version 7")
	}
	require.NotEqual(t, got[0].ID, got[1].ID)
}

// TestAppendNotifiesItsTypes: a committed append notifies dcb_events with
// the types it stored, as a JSON array (package listeners wakes only the
// listeners that read them); a failed one notifies nothing; and types too
// many to fit in a notification are sent as an empty payload, meaning "any".
func TestAppendNotifiesItsTypes(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	s := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(s.Close)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN dcb_events")
	require.NoError(t, err)
	next := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(wctx)
		require.NoError(t, err)
		return n.Payload
	}

	b := fresh("b")
	_, err = s.Append(ctx, []eventstore.Event{ev("Opened", b), ev("Changed", b), ev("Opened", b)}, nil)
	require.NoError(t, err)
	require.JSONEq(t, `["Changed", "Opened"]`, next())

	_, err = s.Append(ctx, []eventstore.Event{ev("Refused", b)}, cond(query(item{Tags: []string{b}}), 0))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed)
	_, err = s.Append(ctx, []eventstore.Event{ev("Quoted \"type\"", b)}, nil)
	require.NoError(t, err)
	require.JSONEq(t, `["Quoted \"type\""]`, next(), "nothing from the failed append")

	// PostgreSQL refuses payloads of 8000 bytes or more. The payload is
	// ["t1","t2",…]: 1 + Σ (len(ti) + 3) bytes.
	types := func(lengths ...int) []eventstore.Event {
		var events []eventstore.Event
		for i, n := range lengths {
			events = append(events, ev(fmt.Sprintf("%02d%s", i, strings.Repeat("x", n-2)), b))
		}
		return events
	}
	var fits, over []int
	for range 30 {
		fits, over = append(fits, 255), append(over, 255)
	}
	fits, over = append(fits, 255), append(over, 256) // 7,999 and 8,000 bytes
	_, err = s.Append(ctx, types(fits...), nil)
	require.NoError(t, err)
	require.Len(t, next(), 7999)
	_, err = s.Append(ctx, types(over...), nil)
	require.NoError(t, err)
	require.Empty(t, next(), "8000 bytes do not fit")
}

// TestIdempotentRetry: appending the same event ids again (a client retry
// after a timeout) stores nothing and answers as the first append did, even
// when the retries race each other.
func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	b := fresh("b")
	q := query(item{Tags: []string{b}})
	batch := []eventstore.Event{
		{ID: uuid.Must(uuid.NewV7()), Type: "A", Tags: []string{b}},
		{ID: uuid.Must(uuid.NewV7()), Type: "B", Tags: []string{b}},
	}
	first, err := s.Append(ctx, batch, cond(q, 0))
	require.NoError(t, err)

	again, err := s.Append(ctx, batch, cond(q, 0))
	require.NoError(t, err, "a retry must not fail on its own first attempt's events")
	require.Equal(t, first, again)

	var wg sync.WaitGroup
	results := make([]eventstore.AppendResult, 16)
	errs := make([]error, 16)
	racing := []eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "C", Tags: []string{b}}}
	for i := range results {
		wg.Go(func() { results[i], errs[i] = s.Append(ctx, racing, nil) })
	}
	wg.Wait()
	for i := range results {
		require.NoError(t, errs[i])
		require.Equal(t, results[0], results[i])
	}

	stored, err := s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 3, "each event stored once")

	_, err = s.Append(ctx, []eventstore.Event{batch[0], {ID: uuid.Must(uuid.NewV7()), Type: "D", Tags: []string{b}}}, nil)
	require.ErrorIs(t, err, eventstore.ErrIDReused)
	stored, err = s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 3, "a partly reused batch stores nothing")
}

// TestMixedIDsAreRefused: an append that gives some events ids and not
// others could never be retried (its other ids are generated anew), so it is
// refused up front, saying what to do.
func TestMixedIDsAreRefused(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	b := fresh("b")
	mixed := []eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "A", Tags: []string{b}}, {Type: "B", Tags: []string{b}}}
	_, err := s.Append(context.Background(), mixed, nil)
	require.ErrorIs(t, err, eventstore.ErrInvalidInput)
	require.EqualError(t, err, "eventstore: invalid events[1].id: is missing while events[0].id is given: give every event of an append an id, or none")
	stored, err := s.Read(context.Background(), query(item{Tags: []string{b}}), eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Empty(t, stored)
}

// TestLostBatchAnswerIsRetriedIdempotently: when a group-commit batch fails
// after it committed (the connection dropped before the answer came), the
// committer retries its appends one by one. Their ids were generated, not
// given, yet each retry must find its own events and answer their position:
// not append them again, and not fail its condition on them.
func TestLostBatchAnswerIsRetriedIdempotently(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	a, b := fresh("a"), fresh("b")
	qa, qb := query(item{Tags: []string{a}}), query(item{Tags: []string{b}})
	res, errs := s.CommitBatchLosingTheAnswer(ctx,
		[][]eventstore.Event{{ev("Opened", a)}, {ev("Opened", b), ev("Changed", b)}, {ev("Logged")}},
		[]*eventstore.AppendCondition{cond(qa, 0), cond(qb, 0), nil})
	for i, err := range errs {
		require.NoError(t, err, "append %d of the batch", i)
	}
	for i, q := range []eventstore.Query{qa, qb} {
		stored, err := s.Read(ctx, q, eventstore.ReadOptions{})
		require.NoError(t, err)
		require.Len(t, stored, i+1, "each event stored once")
		require.Equal(t, stored[i].Position, res[i].Position, "the retry answers the batch's position")
	}
	logged, err := s.Read(ctx, query(item{Types: []string{"Logged"}}), eventstore.ReadOptions{From: res[0].Position})
	require.NoError(t, err)
	require.Len(t, logged, 1, "the unconditional append is not repeated")
}

// TestBadInputIsRefusedBeforeWriting: every malformed append or read fails
// with an *InputError naming the field, and the log does not change.
func TestBadInputIsRefusedBeforeWriting(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{Limits: eventstore.Limits{MaxEventsPerAppend: 5, MaxTagsPerEvent: 3}})
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	long := strings.Repeat("x", 257)
	cases := []struct {
		name   string
		events []eventstore.Event
		cond   *eventstore.AppendCondition
		field  string
	}{
		{"NoEvents", nil, nil, "events"},
		{"TooManyEvents", make([]eventstore.Event, 6), nil, "events"},
		{"EmptyType", []eventstore.Event{ev("A"), ev("")}, nil, "events[1].type"},
		{"OversizedType", []eventstore.Event{ev(long)}, nil, "events[0].type"},
		{"TypeWithNUL", []eventstore.Event{ev("A\x00B")}, nil, "events[0].type"},
		{"TypeNotUTF8", []eventstore.Event{ev("A\xff")}, nil, "events[0].type"},
		{"EmptyTag", []eventstore.Event{ev("A", "ok", "")}, nil, "events[0].tags[1]"},
		{"OversizedTag", []eventstore.Event{ev("A", long)}, nil, "events[0].tags[0]"},
		{"TooManyTags", []eventstore.Event{ev("A", "a", "b", "c", "d")}, nil, "events[0].tags"},
		{"RepeatedID", []eventstore.Event{{ID: id, Type: "A"}, {ID: id, Type: "A"}}, nil, "events[1].id"},
		{"SomeIDsMissing", []eventstore.Event{{ID: id, Type: "A"}, {Type: "A"}}, nil, "events[1].id"},
		{"SomeIDsGiven", []eventstore.Event{{Type: "A"}, {Type: "A"}, {ID: id, Type: "A"}}, nil, "events[2].id"},
		{"BadMetadata", []eventstore.Event{{Type: "A", Metadata: eventstore.Metadata{CausationID: "a\x00"}}}, nil, "events[0].metadata.causation_id"},
		{"EmptyConditionType", []eventstore.Event{ev("A")}, cond(query(item{Types: []string{""}}), 0), "condition.failIfEventsMatch.items[0].types[0]"},
		{"EmptyConditionTag", []eventstore.Event{ev("A")}, cond(query(item{Tags: []string{"a", ""}}), 0), "condition.failIfEventsMatch.items[0].tags[1]"},
		{"NegativeAfter", []eventstore.Event{ev("A")}, cond(query(), -1), "condition.after"},
	}
	headBefore, err := s.Head(ctx)
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Append(ctx, c.events, c.cond)
			var inputErr *eventstore.InputError
			require.ErrorAs(t, err, &inputErr)
			require.ErrorIs(t, err, eventstore.ErrInvalidInput)
			require.Equal(t, c.field, inputErr.Field)
		})
	}
	reads := []struct {
		name  string
		q     eventstore.Query
		opts  eventstore.ReadOptions
		field string
	}{
		{"EmptyType", query(item{Types: []string{"A", ""}}), eventstore.ReadOptions{}, "query.items[0].types[1]"},
		{"EmptyTag", query(item{}, item{Tags: []string{""}}), eventstore.ReadOptions{}, "query.items[1].tags[0]"},
		{"NegativeFrom", query(), eventstore.ReadOptions{From: -1}, "options.from"},
		{"NegativeLimit", query(), eventstore.ReadOptions{Limit: -1}, "options.limit"},
		{"LimitAboveInt32", query(), eventstore.ReadOptions{Limit: math.MaxInt32 + 1}, "options.limit"},
	}
	for _, c := range reads {
		t.Run("Read"+c.name, func(t *testing.T) {
			_, err := s.Read(ctx, c.q, c.opts)
			var inputErr *eventstore.InputError
			require.ErrorAs(t, err, &inputErr)
			require.Equal(t, c.field, inputErr.Field)
			require.NotContains(t, err.Error(), "0x", "no Go pointer")
		})
	}
	headAfter, err := s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, headBefore, headAfter, "nothing was written")
}

// TestAppendTx: appends and reads inside the caller's transaction commit or
// roll back with it (eventstore.md, guarantee 4).
func TestAppendTx(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	b := fresh("b")
	q := query(item{Tags: []string{b}})

	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("A", b)}, cond(q, 0))
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "CREATE TEMP TABLE side_effect (n int)") // the caller's own work
	require.NoError(t, err)
	inTx, err := s.ReadTx(ctx, tx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, inTx, 1, "the transaction sees its own append")
	outside, err := s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Empty(t, outside, "nobody else does before commit")
	require.NoError(t, tx.Rollback(ctx))
	outside, err = s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Empty(t, outside, "rolled back with the transaction")

	tx, err = s.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("A", b)}, cond(q, 0))
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("A", b)}, cond(q, 0))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed, "the condition sees the transaction's own events")
	require.NoError(t, tx.Commit(ctx), "a failed condition leaves the transaction usable")
	outside, err = s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, outside, 1)
}

// TestAppendTxRefusesOtherIsolation: under REPEATABLE READ the condition would
// be checked on a snapshot older than the append lock, so it is refused.
func TestAppendTxRefusesOtherIsolation(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		tx, err := s.Pool().BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
		require.NoError(t, err)
		_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("A")}, nil)
		require.ErrorContains(t, err, "READ COMMITTED", string(iso))
		require.NoError(t, tx.Rollback(ctx))
	}
}

func TestLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	_, err := s.Append(ctx, []eventstore.Event{ev("A")}, nil)
	require.NoError(t, err)
	for _, stmt := range []string{"UPDATE events SET type = 'B'", "DELETE FROM events", "TRUNCATE events"} {
		_, err := s.Pool().Exec(ctx, stmt)
		require.ErrorContains(t, err, "append-only", stmt)
	}
}

// TestClose: an append racing Close either commits or fails with ErrClosed;
// none hangs, none is lost after being acknowledged.
func TestClose(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	s := eventstore.New(pool, eventstore.Options{})
	ctx := context.Background()
	b := fresh("b")
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Append(ctx, []eventstore.Event{ev("A", b)}, nil) })
	}
	s.Close()
	wg.Wait()
	acknowledged := 0
	for _, err := range errs {
		if err == nil {
			acknowledged++
			continue
		}
		require.ErrorIs(t, err, eventstore.ErrClosed)
	}
	reader := eventstore.New(pool, eventstore.Options{})
	defer reader.Close()
	stored, err := reader.Read(ctx, query(item{Tags: []string{b}}), eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, acknowledged)
	s.Close() // idempotent
}

// TestUnavailableDatabase: with PostgreSQL away, appends and reads fail with
// ErrUnavailable, which callers map to "try again later".
func TestUnavailableDatabase(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	s := eventstore.New(pool, eventstore.Options{})
	defer s.Close()
	ctx := context.Background()
	_, err = s.Append(ctx, []eventstore.Event{ev("A")}, nil)
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	_, err = s.Read(ctx, query(), eventstore.ReadOptions{})
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	_, err = s.Head(ctx)
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
}

// TestBatchTimeoutIsUnavailable: an append whose batch runs out of
// BatchTimeout (here behind a transaction that holds the append lock) may or
// may not have committed, so it fails with ErrUnavailable, and the retry with
// the same ids, once the lock is free, stores it once. A caller's own
// cancellation stays its own error.
func TestBatchTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{BatchTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	b := fresh("b")
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("Holding", b)}, nil)
	require.NoError(t, err)

	events := []eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "Stalled", Tags: []string{b}}}
	_, err = s.Append(ctx, events, nil)
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	require.True(t, eventstore.IsUnavailable(err))
	require.ErrorContains(t, err, "outcome unknown")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Append(canceled, events, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, eventstore.ErrUnavailable, "the caller's own cancellation")

	require.NoError(t, tx.Rollback(ctx))
	res, err := s.Append(ctx, events, nil)
	require.NoError(t, err, "the retry with the same ids")
	stored, err := s.Read(ctx, query(item{Tags: []string{b}}), eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 1)
	require.Equal(t, res.Position, stored[0].Position)
}

// TestOnAppend: the hook hears of every append that got past validation, by
// Append or AppendTx, with its outcome; not of refused input.
func TestOnAppend(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []eventstore.AppendStats
	s := eventstoretest.NewStore(t, eventstore.Options{OnAppend: func(st eventstore.AppendStats) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, st)
	}})
	ctx := context.Background()
	b := fresh("b")
	_, err := s.Append(ctx, []eventstore.Event{ev("A", b), ev("A", b)}, nil)
	require.NoError(t, err)
	_, err = s.Append(ctx, []eventstore.Event{ev("A", b)}, cond(query(item{Tags: []string{b}}), 0))
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed)
	_, err = s.Append(ctx, []eventstore.Event{ev("")}, nil)
	require.ErrorIs(t, err, eventstore.ErrInvalidInput)
	require.NoError(t, pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		_, err := s.AppendTx(ctx, tx, []eventstore.Event{ev("A", b)}, nil)
		return err
	}))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 3, "not the refused input")
	require.Equal(t, []int{2, 1, 1}, []int{seen[0].Events, seen[1].Events, seen[2].Events})
	require.NoError(t, seen[0].Err)
	require.ErrorIs(t, seen[1].Err, eventstore.ErrAppendConditionFailed)
	require.NoError(t, seen[2].Err)
}

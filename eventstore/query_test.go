package eventstore_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

type item = eventstore.QueryItem

func query(items ...item) eventstore.Query { return eventstore.Query{Items: items} }

// TestReadConformance is the query semantics of eventstore.md as a table: OR
// between items, AND of an item's tags, types only, tags only, match-all, and
// the from/limit/backwards options. Every case is also checked against
// Query.Matches, so the SQL and the Go definition cannot drift apart.
func TestReadConformance(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	log := []eventstore.Event{
		{Type: "A", Tags: []string{"x", "y"}},
		{Type: "B", Tags: []string{"x"}},
		{Type: "A", Tags: []string{"y"}},
		{Type: "C", Tags: []string{"x", "y", "z"}},
		{Type: "B"},
		{Type: "A", Tags: []string{"z"}},
	}
	var pos []int64 // pos[i] is the position of log[i]; the cases name events by index 1..6
	for _, e := range log {
		res, err := s.Append(ctx, []eventstore.Event{e}, nil)
		require.NoError(t, err)
		pos = append(pos, res.Position)
	}
	at := func(n int) int64 { return pos[n-1] }

	cases := []struct {
		name string
		q    eventstore.Query
		opts eventstore.ReadOptions
		want []int
	}{
		{"NoItemsMatchesAll", query(), eventstore.ReadOptions{}, []int{1, 2, 3, 4, 5, 6}},
		{"EmptyItemMatchesAll", query(item{}), eventstore.ReadOptions{}, []int{1, 2, 3, 4, 5, 6}},
		{"EmptyItemBesideOthersMatchesAll", query(item{Types: []string{"C"}}, item{}), eventstore.ReadOptions{}, []int{1, 2, 3, 4, 5, 6}},
		{"OneType", query(item{Types: []string{"A"}}), eventstore.ReadOptions{}, []int{1, 3, 6}},
		{"TypesAreOred", query(item{Types: []string{"A", "B"}}), eventstore.ReadOptions{}, []int{1, 2, 3, 5, 6}},
		{"OneTag", query(item{Tags: []string{"x"}}), eventstore.ReadOptions{}, []int{1, 2, 4}},
		{"TagsAreAnded", query(item{Tags: []string{"x", "y"}}), eventstore.ReadOptions{}, []int{1, 4}},
		{"TagsAndedInAnyOrder", query(item{Tags: []string{"y", "x"}}), eventstore.ReadOptions{}, []int{1, 4}},
		{"TypeAndTag", query(item{Types: []string{"A"}, Tags: []string{"y"}}), eventstore.ReadOptions{}, []int{1, 3}},
		{"TypesAndTags", query(item{Types: []string{"A", "C"}, Tags: []string{"x", "y"}}), eventstore.ReadOptions{}, []int{1, 4}},
		{"ItemsAreOred", query(item{Types: []string{"A"}, Tags: []string{"x"}}, item{Types: []string{"B"}}), eventstore.ReadOptions{}, []int{1, 2, 5}},
		{"OverlappingItemsReturnEachEventOnce", query(item{Tags: []string{"z"}}, item{Tags: []string{"x"}}), eventstore.ReadOptions{}, []int{1, 2, 4, 6}},
		{"UnknownTag", query(item{Tags: []string{"nope"}}), eventstore.ReadOptions{}, nil},
		{"UnknownType", query(item{Types: []string{"Nope"}}), eventstore.ReadOptions{}, nil},
		{"OneTagMissing", query(item{Types: []string{"A"}, Tags: []string{"x", "nope"}}), eventstore.ReadOptions{}, nil},
		{"TagIsNotAType", query(item{Types: []string{"x"}}), eventstore.ReadOptions{}, nil},
		{"FromIsInclusive", query(item{Types: []string{"A"}}), eventstore.ReadOptions{From: at(3)}, []int{3, 6}},
		{"Limit", query(item{Types: []string{"A"}}), eventstore.ReadOptions{Limit: 2}, []int{1, 3}},
		{"LimitAcrossItems", query(item{Tags: []string{"z"}}, item{Tags: []string{"x"}}), eventstore.ReadOptions{Limit: 3}, []int{1, 2, 4}},
		{"Backwards", query(item{Types: []string{"A"}}), eventstore.ReadOptions{Backwards: true}, []int{6, 3, 1}},
		{"BackwardsFromIsInclusive", query(item{Types: []string{"A"}}), eventstore.ReadOptions{Backwards: true, From: at(3)}, []int{3, 1}},
		{"BackwardsFromLimit", query(item{Types: []string{"A"}}), eventstore.ReadOptions{Backwards: true, From: at(5), Limit: 1}, []int{3}},
		{"BackwardsAcrossItems", query(item{Tags: []string{"z"}}, item{Tags: []string{"x"}}), eventstore.ReadOptions{Backwards: true, Limit: 3}, []int{6, 4, 2}},
		{"AllFrom", query(), eventstore.ReadOptions{From: at(4)}, []int{4, 5, 6}},
		{"AllLimit", query(), eventstore.ReadOptions{Limit: 2}, []int{1, 2}},
		{"AllBackwardsLimit", query(), eventstore.ReadOptions{Backwards: true, Limit: 2}, []int{6, 5}},
		{"AllBackwardsFrom", query(), eventstore.ReadOptions{Backwards: true, From: at(2)}, []int{2, 1}},
		{"FromBeyondHead", query(item{Types: []string{"A"}}), eventstore.ReadOptions{From: at(6) + 1}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Read(ctx, c.q, c.opts)
			require.NoError(t, err)
			gotPos := make([]int64, len(got))
			for i, e := range got {
				gotPos[i] = e.Position
				require.Equal(t, log[indexOf(pos, e.Position)].Type, e.Type)
			}
			wantPos := make([]int64, len(c.want))
			for i, n := range c.want {
				wantPos[i] = at(n)
			}
			require.Equal(t, wantPos, gotPos)

			if c.opts == (eventstore.ReadOptions{}) {
				var matched []int64
				for i, e := range log {
					if c.q.Matches(e.Type, e.Tags) {
						matched = append(matched, pos[i])
					}
				}
				require.Equal(t, wantPos, append([]int64{}, matched...), "Query.Matches disagrees with the read")
			}
		})
	}
}

func indexOf(s []int64, v int64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestStreamPages reads more events than one page through Stream, forwards and
// backwards, with and without a limit.
func TestStreamPages(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{PageSize: 7})
	ctx := context.Background()
	events := make([]eventstore.Event, 30)
	for i := range events {
		events[i] = eventstore.Event{Type: "Paged", Tags: []string{"stream"}}
	}
	res, err := s.Append(ctx, events, nil)
	require.NoError(t, err)
	first := res.Position - 29

	collect := func(opts eventstore.ReadOptions) []int64 {
		var got []int64
		for e, err := range s.Stream(ctx, query(item{Tags: []string{"stream"}}), opts) {
			require.NoError(t, err)
			got = append(got, e.Position)
		}
		return got
	}
	span := func(from, to int64) []int64 {
		var out []int64
		for p := from; ; {
			out = append(out, p)
			if p == to {
				return out
			}
			if from < to {
				p++
			} else {
				p--
			}
		}
	}
	require.Equal(t, span(first, first+29), collect(eventstore.ReadOptions{}))
	require.Equal(t, span(first+29, first), collect(eventstore.ReadOptions{Backwards: true}))
	require.Equal(t, span(first+3, first+18), collect(eventstore.ReadOptions{From: first + 3, Limit: 16}))
	require.Equal(t, span(first+20, first+5), collect(eventstore.ReadOptions{From: first + 20, Limit: 16, Backwards: true}))
	require.Equal(t, span(first, first+29), collect(eventstore.ReadOptions{Limit: math.MaxInt32 + 1}),
		"Stream takes a limit above PostgreSQL's int: it reads in pages")
}

// TestLargestLimits: Read's limit reaches PostgreSQL as an int, so the
// largest is math.MaxInt32 (above, Read refuses it: TestBadInputIsRefused),
// and so is the largest page size.
func TestLargestLimits(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{PageSize: math.MaxInt32})
	ctx := context.Background()
	res, err := s.Append(ctx, []eventstore.Event{{Type: "Limited"}}, nil)
	require.NoError(t, err)
	got, err := s.Read(ctx, query(), eventstore.ReadOptions{From: res.Position, Limit: math.MaxInt32})
	require.NoError(t, err)
	require.Len(t, got, 1)
	for e, err := range s.Stream(ctx, query(), eventstore.ReadOptions{From: res.Position}) {
		require.NoError(t, err)
		require.Equal(t, res.Position, e.Position)
	}
	require.PanicsWithValue(t, "eventstore: Options.PageSize is 2147483648, the largest is 2147483647", func() {
		eventstore.New(s.Pool(), eventstore.Options{PageSize: math.MaxInt32 + 1})
	})
}

// TestKeyCollisionNeverChangesAnAnswer forges what a 64-bit hash collision
// would do: a lookup key of tag t pointing at an event without t. Reads must
// not return that event, and a limited page must still be full.
func TestKeyCollisionNeverChangesAnAnswer(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	tag := fresh("t")
	var positions []int64
	for i := range 4 {
		res, err := s.Append(ctx, []eventstore.Event{ev("A", tag)}, nil)
		require.NoError(t, err)
		positions = append(positions, res.Position)
		if i == 1 { // a foreign event between the second and the third
			other, err := s.Append(ctx, []eventstore.Event{ev("B", fresh("other"))}, nil)
			require.NoError(t, err)
			_, err = s.Pool().Exec(ctx, "INSERT INTO event_keys (key, position) VALUES ($1, $2)", eventstore.TagKey(tag), other.Position)
			require.NoError(t, err)
		}
	}
	q := query(item{Tags: []string{tag}})
	all, err := s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Equal(t, positions, positionsOf(all))
	page, err := s.Read(ctx, q, eventstore.ReadOptions{Limit: 3})
	require.NoError(t, err)
	require.Len(t, page, 3, "the page is completed past the collision")
	require.Equal(t, positions[2], page[2].Position)
	back, err := s.Read(ctx, q, eventstore.ReadOptions{Limit: 3, Backwards: true})
	require.NoError(t, err)
	require.Len(t, back, 3)
	require.Equal(t, positions[1], back[2].Position)
}

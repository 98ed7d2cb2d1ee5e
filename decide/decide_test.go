package decide_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/gwt"
)

// The canonical DCB example: students subscribe to courses. One decision
// spans two former aggregates, the course (capacity) and the student (at most
// three courses), and its append condition protects both.

type CourseDefined struct {
	CourseID string `json:"course_id" tag:"course"`
	Capacity int    `json:"capacity"`
}

type StudentSubscribed struct {
	CourseID  string `json:"course_id" tag:"course"`
	StudentID string `json:"student_id" tag:"student"`
}

var events = eventstore.NewRegistry(
	eventstore.Type[CourseDefined]("CourseDefined"),
	eventstore.Type[StudentSubscribed]("StudentSubscribed"),
)

var (
	ErrCourseNotFound    = errors.New("course not found")
	ErrAlreadySubscribed = errors.New("already subscribed")
	ErrCourseFull        = errors.New("course full")
	ErrStudentLimit      = errors.New("student subscribed to three courses already")
)

// Subscribe: given no CourseDefined → ErrCourseNotFound; given the student
// subscribed to the course → ErrAlreadySubscribed; given capacity
// subscriptions → ErrCourseFull; given three subscriptions of the student →
// ErrStudentLimit; else StudentSubscribed.
type Subscribe struct{ CourseID, StudentID string }

// subscriptions is folded from the course's events and the student's
// subscriptions; one StudentSubscribed can be both.
type subscriptions struct {
	capacity    map[string]int // course → capacity, present once defined
	subscribers map[string]int // course → subscriptions
	courses     map[string]int // student → subscriptions
	pairs       map[StudentSubscribed]bool
}

func evolve(s subscriptions, e any) subscriptions {
	if s.capacity == nil {
		s = subscriptions{capacity: map[string]int{}, subscribers: map[string]int{}, courses: map[string]int{}, pairs: map[StudentSubscribed]bool{}}
	}
	switch e := e.(type) {
	case CourseDefined:
		s.capacity[e.CourseID] = e.Capacity
	case StudentSubscribed:
		s.subscribers[e.CourseID]++
		s.courses[e.StudentID]++
		s.pairs[e] = true
	}
	return s
}

func decideSubscribe(s subscriptions, c Subscribe) ([]any, error) {
	capacity, defined := s.capacity[c.CourseID]
	switch {
	case !defined:
		return nil, ErrCourseNotFound
	case s.pairs[StudentSubscribed(c)]:
		return nil, ErrAlreadySubscribed
	case s.subscribers[c.CourseID] >= capacity:
		return nil, ErrCourseFull
	case s.courses[c.StudentID] >= 3:
		return nil, ErrStudentLimit
	}
	return []any{StudentSubscribed(c)}, nil
}

var subscribe = decide.Decider[subscriptions, Subscribe]{
	Events: events,
	Query: func(c Subscribe) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{
			{Types: events.TypesOf(CourseDefined{}, StudentSubscribed{}), Tags: []string{eventstore.Tag("course", c.CourseID)}},
			{Types: events.TypesOf(StudentSubscribed{}), Tags: []string{eventstore.Tag("student", c.StudentID)}},
		}}
	},
	Evolve: evolve,
	Decide: decideSubscribe,
}

func TestSubscribeRules(t *testing.T) {
	t.Parallel()
	store := eventstoretest.NewStore(t, eventstore.Options{})
	for _, mode := range []string{"Pure", "Store"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			spec := gwt.For(subscribe)
			if mode == "Store" {
				spec = spec.On(store)
			}
			c, s := uuid.NewString(), uuid.NewString()
			other, otherStudent := uuid.NewString(), uuid.NewString()
			when := Subscribe{CourseID: c, StudentID: s}

			spec.Given().When(when).ThenError(t, ErrCourseNotFound)
			c, s = uuid.NewString(), uuid.NewString()
			when = Subscribe{CourseID: c, StudentID: s}
			spec.Given(CourseDefined{CourseID: c, Capacity: 2}).When(when).
				Then(t, StudentSubscribed{CourseID: c, StudentID: s})

			c, s = uuid.NewString(), uuid.NewString()
			when = Subscribe{CourseID: c, StudentID: s}
			spec.Given(CourseDefined{CourseID: c, Capacity: 2}, StudentSubscribed(when)).When(when).
				ThenError(t, ErrAlreadySubscribed)

			c, s = uuid.NewString(), uuid.NewString()
			when = Subscribe{CourseID: c, StudentID: s}
			spec.Given(CourseDefined{CourseID: c, Capacity: 1}, StudentSubscribed{CourseID: c, StudentID: otherStudent}).
				When(when).ThenError(t, ErrCourseFull)

			c, s = uuid.NewString(), uuid.NewString()
			when = Subscribe{CourseID: c, StudentID: s}
			spec.Given(CourseDefined{CourseID: c, Capacity: 9},
				StudentSubscribed{CourseID: other + "1", StudentID: s},
				StudentSubscribed{CourseID: other + "2", StudentID: s},
				StudentSubscribed{CourseID: other + "3", StudentID: s},
			).When(when).ThenError(t, ErrStudentLimit)

			c, s = uuid.NewString(), uuid.NewString()
			when = Subscribe{CourseID: c, StudentID: s}
			spec.Given(CourseDefined{CourseID: c, Capacity: 9},
				// Other courses' subscriptions of other students are outside
				// the query: they count for nothing.
				StudentSubscribed{CourseID: other, StudentID: otherStudent},
				StudentSubscribed{CourseID: other, StudentID: otherStudent + "2"},
				StudentSubscribed{CourseID: other, StudentID: otherStudent + "3"},
			).When(when).Then(t, StudentSubscribed(when))
		})
	}
}

// TestRunRespectsBothBoundaries: concurrent decisions retry on conflict and
// end exactly at each limit. 20 students race for a course of 5 seats; one
// student races into 10 courses and ends in exactly 3.
func TestRunRespectsBothBoundaries(t *testing.T) {
	t.Parallel()
	store := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	for round := range 10 {
		course := uuid.NewString()
		_, err := decide.Run(ctx, store, define, CourseDefined{CourseID: course, Capacity: 5})
		require.NoError(t, err)
		results := raceRun(t, store, 20, func(i int) Subscribe {
			return Subscribe{CourseID: course, StudentID: fmt.Sprintf("%s-%d", course, i)}
		})
		require.Equal(t, 5, results[nil], "round %d: %v", round, results)
		require.Equal(t, 15, results[ErrCourseFull], "round %d: %v", round, results)

		student := uuid.NewString()
		courses := make([]string, 10)
		for i := range courses {
			courses[i] = uuid.NewString()
			_, err := decide.Run(ctx, store, define, CourseDefined{CourseID: courses[i], Capacity: 50})
			require.NoError(t, err)
		}
		results = raceRun(t, store, 10, func(i int) Subscribe {
			return Subscribe{CourseID: courses[i], StudentID: student}
		})
		require.Equal(t, 3, results[nil], "round %d: %v", round, results)
		require.Equal(t, 7, results[ErrStudentLimit], "round %d: %v", round, results)
	}
}

func raceRun(t *testing.T, store *eventstore.Store, n int, cmd func(int) Subscribe) map[error]int {
	t.Helper()
	var mu sync.Mutex
	results := map[error]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := decide.Run(context.Background(), store, subscribe, cmd(i))
			mu.Lock()
			results[err]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return results
}

// define is the simplest decider: no rules, one event.
var define = decide.Decider[struct{}, CourseDefined]{
	Events: events,
	Query: func(c CourseDefined) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{eventstore.Tag("course", c.CourseID)}}}}
	},
	Evolve: func(s struct{}, _ any) struct{} { return s },
	Decide: func(_ struct{}, c CourseDefined) ([]any, error) { return []any{c}, nil },
}

// TestRunTx: a decision inside the caller's transaction commits or rolls
// back with it.
func TestRunTx(t *testing.T) {
	t.Parallel()
	store := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	course, student := uuid.NewString(), uuid.NewString()
	_, err := decide.Run(ctx, store, define, CourseDefined{CourseID: course, Capacity: 1})
	require.NoError(t, err)

	tx, err := store.Pool().Begin(ctx)
	require.NoError(t, err)
	res, err := decide.RunTx(ctx, tx, store, subscribe, Subscribe{CourseID: course, StudentID: student})
	require.NoError(t, err)
	require.Positive(t, res.Position)
	require.NoError(t, tx.Rollback(ctx))

	err = pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		_, err := decide.RunTx(ctx, tx, store, subscribe, Subscribe{CourseID: course, StudentID: student})
		return err
	})
	require.NoError(t, err, "the rolled-back subscription left nothing behind")
	_, err = decide.Run(ctx, store, subscribe, Subscribe{CourseID: course, StudentID: student})
	require.ErrorIs(t, err, ErrAlreadySubscribed)
}

// TestRunGivesUp: a decision that loses every race ends with ErrConflict,
// which is also a failed append condition.
func TestRunGivesUp(t *testing.T) {
	t.Parallel()
	store := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	course := uuid.NewString()
	tag := eventstore.Tag("course", course)
	attempts := 0
	// Decide appends a rival event behind the decision's back every time.
	rival := decide.Decider[struct{}, string]{
		Events: events,
		Query: func(string) eventstore.Query {
			return eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{tag}}}}
		},
		Evolve: func(s struct{}, _ any) struct{} { return s },
		Decide: func(struct{}, string) ([]any, error) {
			attempts++
			rivalEvent, err := events.Encode(StudentSubscribed{CourseID: course, StudentID: uuid.NewString()})
			require.NoError(t, err)
			_, err = store.Append(ctx, []eventstore.Event{rivalEvent}, nil)
			require.NoError(t, err)
			return []any{StudentSubscribed{CourseID: course, StudentID: "s"}}, nil
		},
	}
	_, err := decide.Run(ctx, store, rival, "")
	require.ErrorIs(t, err, decide.ErrConflict)
	require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed)
	require.Equal(t, decide.MaxAttempts, attempts)
}

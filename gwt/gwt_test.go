package gwt_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/gwt"
)

type Opened struct {
	Counter string `json:"counter" tag:"counter"`
}

type Incremented struct {
	Counter string `json:"counter" tag:"counter"`
	To      int    `json:"to"`
}

type Elsewhere struct {
	Place string `json:"place" tag:"place"`
}

var events = eventstore.NewRegistry(
	eventstore.Type[Opened]("Opened"),
	eventstore.Type[Incremented]("Incremented"),
	eventstore.Type[Elsewhere]("Elsewhere"),
)

var errNotOpen = errors.New("counter not open")

type increment struct {
	Counter string
	Stray   bool // decide an event outside the decision's own query
}

type counter struct {
	open  bool
	value int
}

var incrementer = decide.Decider[counter, increment]{
	Events: events,
	Query: func(c increment) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{eventstore.Tag("counter", c.Counter)}}}}
	},
	Evolve: func(s counter, e any) counter {
		switch e := e.(type) {
		case Opened:
			s.open = true
		case Incremented:
			s.value = e.To
		}
		return s
	},
	Decide: func(s counter, c increment) ([]any, error) {
		if !s.open {
			return nil, errNotOpen
		}
		if c.Stray {
			return []any{Elsewhere{Place: "x"}}, nil
		}
		return []any{Incremented{Counter: c.Counter, To: s.value + 1}}, nil
	},
}

func TestScenarios(t *testing.T) {
	t.Parallel()
	store := eventstoretest.NewStore(t, eventstore.Options{})
	for _, spec := range []gwt.Scenario[counter, increment]{gwt.For(incrementer), gwt.For(incrementer).On(store)} {
		c := uuid.NewString()
		spec.Given(Opened{Counter: c}, Incremented{Counter: c, To: 1}).
			When(increment{Counter: c}).
			Then(t, Incremented{Counter: c, To: 2})
		spec.Given().When(increment{Counter: c + "new"}).ThenError(t, errNotOpen)
		// An event outside the decision's own query (no decision reads it)
		// is checked like any other.
		spec.Given(Opened{Counter: c}).When(increment{Counter: c, Stray: true}).Then(t, Elsewhere{Place: "x"})
	}
}

// TestPureScenarioSeesOnlyTheQuery: given events outside the decision's query
// are not handed to it, as in the store.
func TestPureScenarioSeesOnlyTheQuery(t *testing.T) {
	t.Parallel()
	gwt.For(incrementer).
		Given(Opened{Counter: "a"}, Incremented{Counter: "b", To: 7}).
		When(increment{Counter: "a"}).
		Then(t, Incremented{Counter: "a", To: 1})
}

// TestFailureMessages: a failing scenario says what was given, what was
// commanded, what was expected and what happened.
func TestFailureMessages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t testing.TB)
		want []string
	}{
		{"WrongEvents", func(t testing.TB) {
			gwt.For(incrementer).Given(Opened{Counter: "a"}).When(increment{Counter: "a"}).Then(t, Incremented{Counter: "a", To: 5})
		}, []string{"given:", "gwt_test.Opened{Counter:a}", "when:", "gwt_test.increment{Counter:a", "want events:", "To:5", "got events:", "To:1"}},
		{"ErrorInsteadOfEvents", func(t testing.TB) {
			gwt.For(incrementer).Given().When(increment{Counter: "a"}).Then(t, Incremented{Counter: "a", To: 1})
		}, []string{"(none)", "got error: counter not open"}},
		{"EventsInsteadOfError", func(t testing.TB) {
			gwt.For(incrementer).Given(Opened{Counter: "a"}).When(increment{Counter: "a"}).ThenError(t, errNotOpen)
		}, []string{"want error: counter not open", "got error: <nil>", "To:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := &recorder{TB: t}
			r.run(c.run)
			require.True(t, r.failed, "the scenario must fail")
			for _, w := range c.want {
				require.Contains(t, r.String(), w)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	msgs   []string
	failed bool
}

func (r *recorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); r.FailNow() }
func (r *recorder) Fail()                             { r.mu.Lock(); r.failed = true; r.mu.Unlock() }
func (r *recorder) FailNow()                          { r.Fail(); runtime.Goexit() }
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

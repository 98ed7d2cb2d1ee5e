package eventstore

import "context"

// Internals exposed to the external tests of this package only.

var (
	AppendSQL           = appendSQL
	ReadSQL             = readSQL
	ReadBackwardsSQL    = readBackwardsSQL
	ReadAllSQL          = readAllSQL
	ReadAllBackwardsSQL = readAllBackwardsSQL
)

// AppendArgs returns the arguments of AppendSQL for one append.
func (s *Store) AppendArgs(events []Event, cond *AppendCondition) ([]any, error) {
	st, err := s.prepare(context.Background(), events, cond)
	if err != nil {
		return nil, err
	}
	return st.args, nil
}

// ReadArgs returns the arguments of ReadSQL for q, before from and limit.
func ReadArgs(q Query) []any {
	p := probesOf(q)
	return []any{p.Keys, p.TypesLo, p.TypesHi, p.TagsLo, p.TagsHi, nonNil(p.Types), nonNil(p.Tags)}
}

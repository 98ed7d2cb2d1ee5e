package eventstore

import "context"

// Internals exposed to the external tests of this package only.

var (
	AppendSQL = appendSQL
	ReadSQL   = readSQL
)

// AppendArgs returns the arguments of AppendSQL for one append.
func (s *Store) AppendArgs(events []Event, cond *AppendCondition) ([]any, error) {
	return s.BatchArgs([][]Event{events}, []*AppendCondition{cond})
}

// BatchArgs returns the arguments of AppendSQL for appends committed together.
func (s *Store) BatchArgs(events [][]Event, conds []*AppendCondition) ([]any, error) {
	stmts := make([]*appendStatement, len(events))
	for i := range events {
		st, err := s.prepare(context.Background(), events[i], conds[i])
		if err != nil {
			return nil, err
		}
		stmts[i] = st
	}
	return batchArgs(stmts), nil
}

// ReadArgs returns the arguments of ReadSQL.
func ReadArgs(q Query, opts ReadOptions) []any {
	return readArgs(q, opts)
}

// Queued returns the number of appends waiting for the group commit.
func (s *Store) Queued() int { return len(s.queue) }

// TagKey is the lookup key of a tag-only query item.
func TagKey(tag string) int64 { return tagKey(tag) }

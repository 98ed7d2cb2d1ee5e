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

// CommitBatchLosingTheAnswer commits appends as one batch, as the
// group-commit goroutine does, then acts as if the answer had been lost with
// the connection: it retries them one by one as the committer does after a
// failed batch, and returns what each caller is told.
func (s *Store) CommitBatchLosingTheAnswer(ctx context.Context, events [][]Event, conds []*AppendCondition) ([]AppendResult, []error) {
	batch := make([]*pending, len(events))
	stmts := make([]*appendStatement, len(events))
	for i := range events {
		st, err := s.prepare(ctx, events[i], conds[i])
		if err != nil {
			panic(err)
		}
		stmts[i] = st
		batch[i] = &pending{ctx: ctx, stmt: st, done: make(chan outcome, 1)}
	}
	if _, err := execAppends(ctx, s.pool, stmts); err != nil {
		panic(err)
	}
	s.commitEach(batch)
	res, errs := make([]AppendResult, len(batch)), make([]error, len(batch))
	for i, p := range batch {
		out := <-p.done
		res[i], errs[i] = out.res, out.err
	}
	return res, errs
}

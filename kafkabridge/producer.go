package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerOptions configures NewProducer.
type ProducerOptions struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// TransactionalID identifies the producer to the brokers across
	// restarts: a new producer with the same id fences the previous one
	// and aborts its unfinished transaction. It must therefore be stable
	// per process and different for processes running at the same time
	// (one per server replica), or they fence each other in turn.
	TransactionalID string
	// Logger gets one line per broker outage; slog.Default() if nil.
	Logger *slog.Logger
	// Timeout bounds one Produce call when ctx has no earlier deadline
	// (default 30s): with the broker away, the client would otherwise
	// retry forever.
	Timeout time.Duration
}

// Producer is a transactional producer: each Produce call is one Kafka
// transaction, so read_committed consumers see all of its records or none.
// It is safe for concurrent use; calls take turns, as a producer runs one
// transaction at a time.
type Producer struct {
	opts   ProducerOptions
	health *health

	mu     sync.Mutex
	cl     *kgo.Client // nil: made on the next Produce
	hooks  *retirable  // cl's
	closed bool

	// The outcome of the last Produce, apart from mu, which a Produce
	// holds while the broker is away.
	outcomeMu           sync.Mutex
	lastErr             error
	lastErrAt, lastOKAt time.Time
}

// ProducerStatus is a producer's state for readiness checks.
type ProducerStatus struct {
	// LastError is the error of the last Produce call if it failed (a
	// broker out of reach, the producer fenced by another with the same
	// transactional id, …), nil if it succeeded or none was made yet;
	// LastErrorAt is when it failed. The next successful Produce clears it.
	LastError   error
	LastErrorAt time.Time
	// LastSuccessAt is when a Produce last succeeded (zero if never).
	LastSuccessAt time.Time
}

// Status reports the outcome of the last Produce call. It does not talk to
// the brokers, never blocks on a Produce in progress, and is safe for
// concurrent use.
func (p *Producer) Status() ProducerStatus {
	p.outcomeMu.Lock()
	defer p.outcomeMu.Unlock()
	return ProducerStatus{LastError: p.lastErr, LastErrorAt: p.lastErrAt, LastSuccessAt: p.lastOKAt}
}

// record keeps the outcome of a Produce call, unless the caller gave up
// (its ctx cancelled) or the producer is closed: neither says anything
// about Kafka.
func (p *Producer) record(ctx context.Context, err error) {
	if errors.Is(err, ErrProducerClosed) || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	p.outcomeMu.Lock()
	defer p.outcomeMu.Unlock()
	if err != nil {
		p.lastErr, p.lastErrAt = err, time.Now()
		return
	}
	p.lastErr, p.lastOKAt = nil, time.Now()
}

// ErrProducerClosed is returned by Produce after Close.
var ErrProducerClosed = errors.New("kafkabridge: producer closed")

// NewProducer returns a transactional producer. It connects on the first
// Produce.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	switch {
	case len(opts.Brokers) == 0:
		return nil, errors.New("kafkabridge: NewProducer: no brokers")
	case opts.TransactionalID == "":
		return nil, errors.New("kafkabridge: NewProducer: no transactional id")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	p := &Producer{opts: opts, health: newHealth(opts.Logger.With("transactional_id", opts.TransactionalID), "producer")}
	return p, nil
}

// Produce writes records in one transaction: it begins the transaction,
// produces every record (Topic, Key and Value; the partition follows from
// the key) and commits. It returns nil once the commit is confirmed.
//
// On an error before the commit, the transaction is aborted and no
// read_committed consumer ever sees its records. With the broker away, the
// error comes when ctx is done or after ProducerOptions.Timeout, whichever
// is first. One case is ambiguous, as with any Kafka transaction: if the
// commit was sent but its answer lost, the records may be visible although
// Produce failed. Callers retry on error (a River job does), so consumers
// must tolerate a duplicate, which the deterministic keys make easy to
// recognise.
func (p *Producer) Produce(ctx context.Context, records ...Record) error {
	if len(records) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkabridge: produce: %w", err)
	}
	err := p.transact(ctx, records)
	p.record(ctx, err)
	return err
}

// transact is Produce's transaction.
func (p *Producer) transact(ctx context.Context, records []Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrProducerClosed
	}
	if p.cl == nil {
		hooks := &retirable{h: p.health}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(p.opts.Brokers...),
			kgo.TransactionalID(p.opts.TransactionalID),
			kgo.WithHooks(hooks),
		)
		if err != nil {
			return fmt.Errorf("kafkabridge: producer: %w", err)
		}
		p.cl, p.hooks = cl, hooks
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()

	if err := p.cl.BeginTransaction(); err != nil {
		// The client is in a state it cannot leave (fenced, say).
		p.discardClient()
		return fmt.Errorf("kafkabridge: begin transaction: %w", err)
	}
	if err := p.produce(ctx, records); err != nil {
		p.abort(ctx)
		return fmt.Errorf("kafkabridge: produce: %w", err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.abort(ctx)
		return fmt.Errorf("kafkabridge: commit transaction: %w", err)
	}
	return nil
}

// produce sends the records and waits for the broker to acknowledge them
// all, or for ctx. kgo's ProduceSync would wait past ctx: a transactional
// client does not give up on a record that may have reached the broker
// (its outcome decides the sequence numbers), so with the broker away it
// would wait for as long as the outage lasts. Abandoning the transaction
// is safe instead: abort discards the client, and the broker aborts
// whatever the abandoned transaction wrote.
func (p *Producer) produce(ctx context.Context, records []Record) error {
	results := make(chan error, len(records))
	for _, r := range records {
		p.cl.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value},
			func(_ *kgo.Record, err error) { results <- err })
	}
	var first error
	for range records {
		select {
		case err := <-results:
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// abort ends the current transaction with an abort. If the client cannot,
// or ctx is done, the client is discarded: the next Produce makes a new
// one, whose registration under the same transactional id makes the broker
// abort whatever the old one left open.
func (p *Producer) abort(ctx context.Context) {
	if ctx.Err() != nil {
		p.discardClient()
		return
	}
	if err := p.cl.AbortBufferedRecords(ctx); err != nil {
		p.discardClient()
		return
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		p.discardClient()
	}
}

func (p *Producer) discardClient() {
	// Close waits for the broker for a second or two when it is away:
	// the caller, who gets an error now, need not wait for it.
	p.hooks.retired.Store(true)
	go p.cl.Close()
	p.cl = nil
}

// Close releases the producer. A transaction in progress is aborted (by the
// broker, at the latest when its timeout expires). Produce fails after it.
func (p *Producer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}

package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one Kafka message: as consumed (every field set), or to produce
// (Topic, Key and Value; the partition follows from the key).
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
}

// A Translator turns one message into effects inside tx, typically with
// eventstore's AppendTx. It owns nothing but its statements: the consumer
// begins, commits or rolls back tx.
//
// Return an error wrapping ErrReject for a message that can never be
// processed (undecodable, invalid): its effects are rolled back, it is
// stored in rejected_messages with its raw bytes and the error's text as the
// reason (cleaned of NULs and invalid UTF-8, and bounded), its offset is
// recorded, and consumption goes on. Any other error rolls the transaction
// back and the same message is tried again after a backoff, while the
// consumer owns its partition; its partition does not advance past it.
type Translator func(ctx context.Context, tx pgx.Tx, rec Record) error

// ErrReject marks a message that can never be processed; see Translator.
var ErrReject = errors.New("kafkabridge: message rejected")

// ConsumerOptions configures NewConsumer.
type ConsumerOptions struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Group is the Kafka consumer group, and the key of this consumer's
	// rows in kafka_offsets and rejected_messages.
	Group string
	// Translators maps each topic to consume to its translator.
	Translators map[string]Translator
	// Logger gets one line per rejected message, per outage and per run of
	// failed attempts at a message; slog.Default() if nil.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// at a message whose translator failed (default 100ms and 30s).
	RetryMin, RetryMax time.Duration
}

// Consumer consumes topics with a Kafka consumer group and applies each
// message exactly once in effect; see the package documentation.
type Consumer struct {
	pool   *pgxpool.Pool
	opts   ConsumerOptions
	topics []string
	health *health

	running     atomic.Bool
	client      atomic.Pointer[kgo.Client] // set while Run runs
	redelivered atomic.Int64
	pauses      atomic.Int64 // partitions paused for their backlog (see lanes)

	mu       sync.Mutex
	failures map[topicPartition]failure // partitions stuck on a message
	// owned holds, while Run runs, a context per partition the group
	// assigned to this consumer, cancelled when it is revoked or lost, so
	// that a message being retried lets go of a partition it no longer owns.
	owned map[topicPartition]ownership
}

// ownership is a partition assigned to the consumer.
type ownership struct {
	ctx    context.Context
	cancel context.CancelFunc
}

type topicPartition struct {
	topic     string
	partition int32
}

// failure is a message whose translator keeps failing.
type failure struct {
	offset   int64
	attempts int
	err      error
}

// NewConsumer returns a consumer of the topics of opts.Translators that
// records its progress through pool's kafka_offsets table. It does not
// connect to anything before Run.
func NewConsumer(pool *pgxpool.Pool, opts ConsumerOptions) (*Consumer, error) {
	switch {
	case pool == nil:
		return nil, errors.New("kafkabridge: NewConsumer: nil pool")
	case len(opts.Brokers) == 0:
		return nil, errors.New("kafkabridge: NewConsumer: no brokers")
	case opts.Group == "":
		return nil, errors.New("kafkabridge: NewConsumer: no consumer group")
	case len(opts.Translators) == 0:
		return nil, errors.New("kafkabridge: NewConsumer: no translators")
	}
	for topic, tr := range opts.Translators {
		if topic == "" || tr == nil {
			return nil, fmt.Errorf("kafkabridge: NewConsumer: empty topic or nil translator (topic %q)", topic)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	opts.Logger = opts.Logger.With("consumer_group", opts.Group)
	c := &Consumer{
		pool:     pool,
		opts:     opts,
		health:   newHealth(opts.Logger, "consumer"),
		failures: make(map[topicPartition]failure),
		owned:    make(map[topicPartition]ownership),
	}
	for topic := range opts.Translators {
		c.topics = append(c.topics, topic)
	}
	slices.Sort(c.topics)
	return c, nil
}

// Run joins the consumer group and processes messages until ctx is done,
// then leaves the group and returns nil. While the broker is away it waits
// and retries (the client reconnects with backoff) and logs once per
// outage; while PostgreSQL or a translator fails it retries the message
// with backoff. It returns an error only if the client cannot be built, or
// if Run is already running.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("kafkabridge: Consumer.Run called while running")
	}
	defer c.running.Store(false)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.opts.Brokers...),
		kgo.ConsumerGroup(c.opts.Group),
		// A replica that died (kill -9, a lost host) stays a member until
		// its session times out, and a rebalance waits for it as long:
		// 10 s (Kafka's old default) instead of 45 s.
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(20*time.Second),
		kgo.ConsumeTopics(c.topics...),
		// Kafka's committed offsets are advisory, for Kafka's tools: the
		// consumer seeks by PostgreSQL's. Each partition marks the last
		// record it applied, and the client commits the marks every
		// second in the background.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		// No rebalance between a poll and the queueing of its records:
		// records polled under one assignment of a partition must not be
		// queued under the next (see lanes.add), which would leave a gap.
		kgo.BlockRebalanceOnPoll(),
		// A resumed partition waits for the fetch in flight (see lanes).
		kgo.FetchMaxWait(500*time.Millisecond),
		// Records of aborted transactions are never translated.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Where PostgreSQL knows nothing of a partition, all of it.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(c.seekToStored),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			c.own(ctx, assigned)
		}),
		kgo.OnPartitionsRevoked(c.disown),
		kgo.OnPartitionsLost(c.disown),
		kgo.WithHooks(c.health),
	)
	if err != nil {
		return fmt.Errorf("kafkabridge: consumer: %w", err)
	}
	c.client.Store(cl)
	defer func() {
		c.client.Store(nil)
		c.mu.Lock()
		clear(c.failures) // Status reports them while Run runs
		for _, o := range c.owned {
			o.cancel()
		}
		clear(c.owned)
		c.mu.Unlock()
		// A bounded leave: with the broker away, Close would wait for it.
		leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cl.LeaveGroupContext(leaveCtx)
		cl.Close()
	}()

	// Partitions are independent: each has a goroutine that processes its
	// batches in order while the poll goes on for the others, so that a
	// message being retried holds up its partition and only it.
	lanes := &lanes{c: c, cl: cl, m: map[topicPartition]*lane{}}
	defer lanes.wg.Wait()
	for {
		fetches := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		for _, fe := range fetches.Errors() {
			c.health.record(fe.Err)
		}
		parts := map[topicPartition][]*kgo.Record{}
		fetches.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			parts[tp] = append(parts[tp], r)
		})
		for tp, recs := range parts {
			lanes.add(tp, recs)
		}
		cl.AllowRebalance()
	}
}

// lanes hands each partition's batches to one goroutine at a time, in the
// order polled. A partition with maxBacklog records or more waiting for its
// goroutine (one stuck on a failing message, or slower than its producers)
// is paused: it gets no more records until fewer wait, which bounds what
// waits in memory. The client drops what it fetched for a paused
// partition, without moving its cursor, and fetches it again once resumed;
// but a resumed partition also waits for the fetch in flight to the
// broker, which the broker holds up to FetchMaxWait when its other
// partitions are quiet. So a partition that keeps up is never paused, and
// FetchMaxWait is short.
type lanes struct {
	c  *Consumer
	cl *kgo.Client
	wg sync.WaitGroup

	mu sync.Mutex
	m  map[topicPartition]*lane
}

// maxBacklog is how many records a partition may have waiting before it is
// paused: one full poll's worth.
const maxBacklog = 1000

type lane struct {
	queue   []batch // polled, not yet taken
	waiting int     // records in queue
	running bool    // a goroutine is working through queue
	paused  bool
}

// batch is records of one partition polled while the consumer owned it:
// ctx is that ownership's, ended when the partition is revoked or lost.
type batch struct {
	ctx  context.Context
	recs []*kgo.Record
}

// add queues recs of tp, unless the partition was revoked since the poll.
// Run calls it before it allows rebalances again, so that the ownership
// recs are queued under is the one they were polled under.
func (ls *lanes) add(tp topicPartition, recs []*kgo.Record) {
	owned, ok := ls.c.ownedCtx(tp)
	if !ok {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[tp]
	if l == nil {
		l = &lane{}
		ls.m[tp] = l
	}
	l.queue = append(l.queue, batch{owned, recs})
	l.waiting += len(recs)
	if !l.running { // its goroutine takes recs at once: no backlog
		l.running = true
		ls.wg.Go(func() { ls.work(tp, l) })
		return
	}
	ls.pace(tp, l)
}

// pace pauses or resumes tp by its backlog. ls.mu is held.
func (ls *lanes) pace(tp topicPartition, l *lane) {
	if full := l.waiting >= maxBacklog; full != l.paused {
		l.paused = full
		p := map[string][]int32{tp.topic: {tp.partition}}
		if full {
			ls.c.pauses.Add(1)
			ls.cl.PauseFetchPartitions(p)
		} else {
			ls.cl.ResumeFetchPartitions(p)
		}
	}
}

// work processes l's batches until none is left. A batch not processed to
// its end (the partition revoked or lost, or Run ending) drops the batches
// polled under the same ownership after it: the partition's next owner,
// perhaps this consumer again, starts after the offset PostgreSQL
// recorded, and one of them processed here would leave a gap. Batches of
// a later ownership stay.
func (ls *lanes) work(tp topicPartition, l *lane) {
	for {
		ls.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			ls.mu.Unlock()
			return
		}
		b := l.queue[0]
		l.queue = l.queue[1:]
		l.waiting -= len(b.recs)
		ls.pace(tp, l)
		ls.mu.Unlock()

		last := ls.c.processPartition(b.ctx, b.recs)
		if last != nil {
			ls.cl.MarkCommitRecords(last)
		}
		if last != b.recs[len(b.recs)-1] {
			ls.mu.Lock()
			l.queue = slices.DeleteFunc(l.queue, func(later batch) bool {
				if later.ctx == b.ctx {
					l.waiting -= len(later.recs)
					return true
				}
				return false
			})
			ls.pace(tp, l)
			ls.mu.Unlock()
		}
	}
}

// seekToStored is the consumer's kgo.AdjustFetchOffsetsFn: when partitions
// are assigned, each starts right after the last offset PostgreSQL recorded
// for it, whatever Kafka's committed offset says (that one is committed
// after PostgreSQL's, for tools only, and may lag or be rewound). A
// partition PostgreSQL does not know starts at the beginning of the log.
func (c *Consumer) seekToStored(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored, err := c.storedOffsets(ctx)
	if err != nil {
		// The group session fails and is joined again, after a backoff.
		c.opts.Logger.Warn("kafka partitions assigned but their offsets cannot be read; joining the group again", "err", err)
		return nil, err
	}
	for topic, parts := range offsets {
		for p := range parts {
			if last, ok := stored[topicPartition{topic, p}]; ok {
				// Epoch -1: no data-loss detection against an epoch
				// that PostgreSQL does not keep.
				parts[p] = kgo.NewOffset().At(last + 1).WithEpoch(-1)
			} else {
				parts[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	c.warnIfLogIsBehind(ctx, offsets, stored)
	return offsets, nil
}

// warnIfLogIsBehind logs an error for each assigned partition whose log
// ends before the offset PostgreSQL recorded for it: the broker lost its data (an
// embedded broker started without its data directory, a topic deleted and
// created again). Its new messages take offsets already recorded, and are
// skipped as redeliveries until they pass them. Nothing can tell them apart
// from redeliveries; the operator must decide (e.g. delete the group's rows
// in kafka_offsets), so this says so loudly.
func (c *Consumer) warnIfLogIsBehind(ctx context.Context, assigned map[string]map[int32]kgo.Offset, stored map[topicPartition]int64) {
	cl := c.client.Load()
	if cl == nil || len(stored) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, c.topics...)
	if err != nil && len(ends) == 0 {
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		last, ok := stored[topicPartition{o.Topic, o.Partition}]
		_, mine := assigned[o.Topic][o.Partition]
		if o.Err == nil && ok && mine && o.Offset <= last {
			c.opts.Logger.Error("kafka partition ends before the offset recorded as processed: the broker lost its data; "+
				"new messages up to the recorded offset will be skipped as redeliveries",
				"topic", o.Topic, "partition", o.Partition, "log_end", o.Offset, "recorded_offset", last)
		}
	})
}

// storedOffsets reads the group's last processed offsets from PostgreSQL.
func (c *Consumer) storedOffsets(ctx context.Context) (map[topicPartition]int64, error) {
	rows, err := c.pool.Query(ctx,
		`SELECT topic, partition, last_offset FROM kafka_offsets WHERE consumer_group = $1 AND topic = ANY ($2)`,
		c.opts.Group, c.topics)
	if err != nil {
		return nil, fmt.Errorf("kafkabridge: read offsets: %w", err)
	}
	stored := make(map[topicPartition]int64)
	var (
		tp   topicPartition
		last int64
	)
	_, err = pgx.ForEachRow(rows, []any{&tp.topic, &tp.partition, &last}, func() error {
		stored[tp] = last
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kafkabridge: read offsets: %w", err)
	}
	return stored, nil
}

// processPartition handles the records of one partition in order, each
// until it is done, and returns the last one done (nil if none). Only ctx,
// the partition's ownership, ending stops it early (Run ending, or the
// partition revoked or lost): the partition's next owner (perhaps this
// consumer again) starts after the offset PostgreSQL recorded.
func (c *Consumer) processPartition(ctx context.Context, recs []*kgo.Record) *kgo.Record {
	var last *kgo.Record
	for _, r := range recs {
		if err := c.handleWithRetry(ctx, r); err != nil {
			break
		}
		last = r
	}
	return last
}

// own is the consumer's kgo.OnPartitionsAssigned: it records partitions
// newly assigned to the consumer, each with a context derived from Run's.
func (c *Consumer) own(ctx context.Context, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if _, ok := c.owned[tp]; ok {
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			c.owned[tp] = ownership{pctx, cancel}
		}
	}
}

// disown is the consumer's kgo.OnPartitionsRevoked and OnPartitionsLost: it
// stops the work on those partitions, a message being retried included, and
// forgets their failures, which their next owner reports.
func (c *Consumer) disown(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range revoked {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if o, ok := c.owned[tp]; ok {
				o.cancel()
				delete(c.owned, tp)
			}
			delete(c.failures, tp)
		}
	}
}

// ownedCtx returns the context of an owned partition, and false if the
// consumer does not own it.
func (c *Consumer) ownedCtx(tp topicPartition) (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.owned[tp]
	return o.ctx, ok
}

// handleWithRetry handles r, retrying with exponential backoff until it
// succeeds or ctx is done (Run ends, or the partition is revoked). It logs
// the first failure of a run of attempts and the recovery, not each
// attempt, and how a run that did not succeed ended.
func (c *Consumer) handleWithRetry(ctx context.Context, r *kgo.Record) error {
	rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	tp := topicPartition{r.Topic, r.Partition}
	backoff := c.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := c.handle(ctx, rec)
		if err == nil {
			if attempt > 1 {
				c.clearFailure(tp)
				c.opts.Logger.Info("kafka message processed after failed attempts",
					"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return c.letGo(ctx, tp, rec, attempt)
		}
		c.setFailure(tp, failure{offset: rec.Offset, attempts: attempt, err: err})
		if attempt == 1 {
			c.opts.Logger.Warn("kafka message failed; retrying with backoff, the partition waits",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return c.letGo(ctx, tp, rec, attempt)
		case <-t.C:
		}
		backoff = min(2*backoff, c.opts.RetryMax)
	}
}

// letGo ends the attempts at rec when ctx is done: it forgets the
// partition's failure (Run ended, or the partition is someone else's now)
// and logs that the message was left to the partition's next owner.
func (c *Consumer) letGo(ctx context.Context, tp topicPartition, rec Record, attempts int) error {
	c.clearFailure(tp)
	if attempts > 1 {
		c.opts.Logger.Info("kafka message left unprocessed: the partition was revoked or the consumer stopped",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "attempts", attempts)
	}
	return ctx.Err()
}

// handle applies one message in one transaction: translated (or, if the
// translator rejects it, stored as rejected) and recorded as processed, or
// nothing at all. A message at or below the recorded offset is skipped.
func (c *Consumer) handle(ctx context.Context, rec Record) error {
	translate := c.opts.Translators[rec.Topic]
	skipped, err := c.inTx(ctx, rec, func(tx pgx.Tx) error { return translate(ctx, tx, rec) })
	if skipped {
		c.redelivered.Add(1)
	}
	if !errors.Is(err, ErrReject) {
		return err
	}
	// A transaction of its own: the translator's statements, and any
	// error they left the first transaction in, are gone with it.
	reason := reasonText(err.Error())
	skipped, err = c.inTx(ctx, rec, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO rejected_messages (consumer_group, topic, partition, "offset", key, value, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (consumer_group, topic, partition, "offset") DO NOTHING`,
			c.opts.Group, rec.Topic, rec.Partition, rec.Offset, rec.Key, rec.Value, reason)
		return err
	})
	if err == nil && !skipped {
		c.opts.Logger.Warn("kafka message rejected and stored in rejected_messages",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason)
	}
	return err
}

// inTx runs effect and records rec's offset in one transaction, unless the
// offset is already recorded (skipped). The lock on the partition's row
// makes consumers that hold the same partition (during a rebalance, or
// after a rewind) take turns, and the later one skips.
func (c *Consumer) inTx(ctx context.Context, rec Record, effect func(pgx.Tx) error) (skipped bool, err error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("kafkabridge: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Insert the row if missing, then lock it: ON CONFLICT DO UPDATE
	// locks the existing row and returns its latest committed version
	// (after waiting for any transaction holding it).
	var last int64
	err = tx.QueryRow(ctx, `
		INSERT INTO kafka_offsets AS o (consumer_group, topic, partition, last_offset)
		VALUES ($1, $2, $3, -1)
		ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET last_offset = o.last_offset
		RETURNING last_offset`,
		c.opts.Group, rec.Topic, rec.Partition).Scan(&last)
	if err != nil {
		return false, fmt.Errorf("kafkabridge: lock offset: %w", err)
	}
	if rec.Offset <= last {
		return true, nil // a redelivery: done before
	}
	if err := effect(tx); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `
		UPDATE kafka_offsets SET last_offset = $4, updated_at = now()
		WHERE consumer_group = $1 AND topic = $2 AND partition = $3`,
		c.opts.Group, rec.Topic, rec.Partition, rec.Offset); err != nil {
		return false, fmt.Errorf("kafkabridge: record offset: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("kafkabridge: commit: %w", err)
	}
	return false, nil
}

func (c *Consumer) setFailure(tp topicPartition, f failure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures[tp] = f
}

func (c *Consumer) clearFailure(tp topicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failures, tp)
}

// maxReasonBytes bounds the reason stored in rejected_messages.
const maxReasonBytes = 4000

// reasonText makes a rejection's reason storable as PostgreSQL text,
// whatever the translator put in it (often bytes of the message itself):
// without NUL bytes, valid UTF-8 (invalid bytes become U+FFFD), and at most
// maxReasonBytes plus an ellipsis, cut at a character boundary. A reason
// that failed to store would fail the message for ever, blocking its
// partition.
func reasonText(reason string) string {
	reason = strings.ToValidUTF8(strings.ReplaceAll(reason, "\x00", ""), "\uFFFD")
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "") + "…"
	}
	return reason
}

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/kafkabridge"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/workqueue"
)

// PublishCart is the automation of a submission: the cart is published to
// the Kafka topic published-carts, key = cart id, with a transactional
// producer, then CartPublished is appended. While Kafka is unavailable the
// job retries with exponential backoff, for up to an hour (configurable);
// then CartPublicationFailed is appended. Exactly one of the two ends every
// submitted cart's story: both are decided over the cart's events, on
// condition that neither exists.
//
// Trigger: the listener publish_carts enqueues one job per cart (unique key:
// the cart id) in its transaction, when it sees CartSubmitted.
//
//	given CartPublished or CartPublicationFailed      → nothing (already ended)
//	given CartSubmitted, published to Kafka            → CartPublished
//	given CartSubmitted, the budget spent              → CartPublicationFailed{reason}
type PublishCart struct {
	CartID uuid.UUID `json:"cart_id"`
}

// Kind is the job's kind.
func (PublishCart) Kind() string { return "cart.publish" }

// PublishedCartsTopic is where submitted carts are published.
const PublishedCartsTopic = "published-carts"

// PublishedCart is the message on PublishedCartsTopic.
type PublishedCart struct {
	CartID          uuid.UUID        `json:"cart_id"`
	OrderedProducts []OrderedProduct `json:"ordered_products"`
	TotalPrice      decimal.Decimal  `json:"total_price"`
}

// endPublication decides the end of a submitted cart's story: event is
// CartPublished or CartPublicationFailed.
type endPublication struct{ event any }

var publication = decide.Decider[cart, endPublication]{
	Events: Events,
	Query: func(e endPublication) eventstore.Query {
		var id uuid.UUID
		switch v := e.event.(type) {
		case CartPublished:
			id = v.CartID
		case CartPublicationFailed:
			id = v.CartID
		}
		return eventstore.Query{Items: []eventstore.QueryItem{{
			Types: Events.TypesOf(CartSubmitted{}, CartPublished{}, CartPublicationFailed{}),
			Tags:  []string{cartTag(id)},
		}}}
	},
	Evolve: evolveCart,
	Decide: func(c cart, e endPublication) ([]any, error) {
		if c.published || !c.submitted {
			return nil, nil
		}
		return []any{e.event}, nil
	},
}

// PublishCartsListener enqueues the publication of every submitted cart.
func (s *Service) PublishCartsListener() listeners.Listener {
	return listeners.Listener{
		Name:  "publish_carts",
		Query: eventstore.Query{Items: []eventstore.QueryItem{{Types: Events.TypesOf(CartSubmitted{})}}},
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			for _, e := range events {
				v, err := Events.Decode(e)
				if err != nil {
					return err
				}
				id := v.(CartSubmitted).CartID
				if _, err := s.Jobs.EnqueueTx(ctx, tx, PublishCart{CartID: id}, workqueue.EnqueueOptions{UniqueKey: id.String()}); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// publish is the job's work: nothing if the story already ended, else
// publish (again, after a crash: consumers de-duplicate by the key) and
// record CartPublished.
func (s *Service) publish(ctx context.Context, job workqueue.Job[PublishCart]) error {
	c, _, err := s.readCart(ctx, job.Args.CartID)
	switch {
	case err != nil:
		return err
	case c.published:
		return nil
	case !c.submitted:
		return fmt.Errorf("cart %s is not submitted", job.Args.CartID)
	}
	msg, err := json.Marshal(PublishedCart{CartID: c.submission.CartID, OrderedProducts: c.submission.OrderedProducts,
		TotalPrice: c.submission.TotalPrice})
	if err != nil {
		return err
	}
	// The budget bounds the attempt too: with the broker away, Produce
	// waits for its own timeout (30s by default), which would stretch a
	// shorter budget to that.
	pctx, cancel := context.WithDeadline(ctx, publishDeadline(job.CreatedAt, s.publishBudget, time.Now()))
	defer cancel()
	if err := s.Producer.Produce(pctx, kafkabridge.Record{Topic: PublishedCartsTopic,
		Key: []byte(job.Args.CartID.String()), Value: msg}); err != nil {
		return fmt.Errorf("publish cart %s: %w", job.Args.CartID, err)
	}
	_, err = decide.Run(ctx, s.Store, publication, endPublication{CartPublished{CartID: job.Args.CartID}})
	return err
}

// minPublishAttempt is the least time an attempt to publish gets, even when
// it starts after the budget is spent (every replica was down): a cart is
// never given up without one real try.
const minPublishAttempt = 5 * time.Second

// publishDeadline is when an attempt started at now must stop producing: at
// the end of the job's budget (counted from its creation, as the work
// queue's MaxDuration is), but no sooner than minPublishAttempt from now. A
// zero budget means DefaultPublishBudget.
func publishDeadline(created time.Time, budget time.Duration, now time.Time) time.Time {
	if budget <= 0 {
		budget = DefaultPublishBudget
	}
	return later(created.Add(budget), now.Add(minPublishAttempt))
}

// publishBackoff is the work queue's exponential backoff capped at a
// sixtieth of the budget (at least a second): the queue gives up once the
// next retry would start after the budget, so an uncapped doubling (2048 s
// after the twelfth failure) would end a one-hour budget after some
// 35 minutes; capped, the last retry starts within the budget's final minute.
func publishBackoff(budget time.Duration) func(attempt int) time.Duration {
	limit := max(budget/60, time.Second)
	return func(attempt int) time.Duration {
		return min(workqueue.DefaultBackoff(attempt), limit)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// publicationFailed is the job's GiveUp: it records the failure in the
// transaction that ends the job.
func (s *Service) publicationFailed(ctx context.Context, tx pgx.Tx, job workqueue.Job[PublishCart], lastErr error) error {
	_, err := decide.RunTx(ctx, tx, s.Store, publication,
		endPublication{CartPublicationFailed{CartID: job.Args.CartID, Reason: lastErr.Error()}})
	return err
}

// DefaultPublishBudget is how long a cart's publication retries unless
// configured otherwise.
const DefaultPublishBudget = time.Hour

// RegisterJobs registers the cart's jobs on q; publication gives up after
// budget (DefaultPublishBudget if not positive), attempts included. Call it
// before the queue starts.
func (s *Service) RegisterJobs(q *workqueue.Queue, budget time.Duration) {
	if budget <= 0 {
		budget = DefaultPublishBudget
	}
	s.publishBudget = budget
	workqueue.Register(q, workqueue.KindConfig[ArchiveItem]{Work: s.archive})
	workqueue.Register(q, workqueue.KindConfig[PublishCart]{
		Work:        s.publish,
		MaxAttempts: 30_000, // the budget is the duration
		MaxDuration: budget,
		Backoff:     publishBackoff(budget),
		GiveUp:      s.publicationFailed,
	})
}

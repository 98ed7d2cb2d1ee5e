package eventstore

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Event is an event to append: a type, a set of tags and opaque data.
type Event struct {
	// ID identifies the event. Zero means Append generates a version 7 UUID.
	// Give ids yourself when a retry must be idempotent: appending the same ids
	// again stores nothing and answers as the first append did. Give every
	// event of an append an id, or none: an append that mixes them is refused
	// with an *InputError, since its generated ids would be new on a retry,
	// which could then never be recognised as one.
	ID   uuid.UUID
	Type string
	// Tags place the event in consistency boundaries, e.g. "cart_id:0193…".
	// Order is kept; duplicates are dropped.
	Tags []string
	// Data is opaque to the store. Typed events put JSON here (see Registry).
	Data []byte
	// Metadata is stored beside the event. When zero, Append takes it from the
	// context (see WithMetadata).
	Metadata Metadata
}

// StoredEvent is an event as read back from the log.
type StoredEvent struct {
	Event
	// Position is the event's place in the log: strictly increasing in the order
	// in which appends became visible, with gaps.
	Position   int64
	RecordedAt time.Time
}

// Metadata says why an event was written.
type Metadata struct {
	// CorrelationID ties together everything done for one outside request.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CausationID names what caused this event: a request id or an event id.
	CausationID string `json:"causation_id,omitempty"`
}

func (m Metadata) isZero() bool { return m == Metadata{} }

type metadataKey struct{}

// WithMetadata returns a context whose appends stamp m on every event that has
// no metadata of its own.
func WithMetadata(ctx context.Context, m Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, m)
}

// MetadataFrom returns the metadata set with WithMetadata, or the zero value.
func MetadataFrom(ctx context.Context) Metadata {
	m, _ := ctx.Value(metadataKey{}).(Metadata)
	return m
}

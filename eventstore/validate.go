package eventstore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits bound what one call may ask for. Input beyond them is refused with an
// *InputError before anything is written. The zero value of a field means its
// default.
type Limits struct {
	MaxEventsPerAppend int // default 1000
	MaxTagsPerEvent    int // default 64
	MaxTypeBytes       int // default 256
	MaxTagBytes        int // default 256
	MaxDataBytes       int // default 1 MiB
	MaxQueryItems      int // default 64
	MaxItemTypes       int // default 64
	MaxItemTags        int // default 64
}

// DefaultLimits are the limits of a Store created with zero Options.
var DefaultLimits = Limits{
	MaxEventsPerAppend: 1000,
	MaxTagsPerEvent:    64,
	MaxTypeBytes:       256,
	MaxTagBytes:        256,
	MaxDataBytes:       1 << 20,
	MaxQueryItems:      64,
	MaxItemTypes:       64,
	MaxItemTags:        64,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.MaxEventsPerAppend, d.MaxEventsPerAppend)
	pick(&l.MaxTagsPerEvent, d.MaxTagsPerEvent)
	pick(&l.MaxTypeBytes, d.MaxTypeBytes)
	pick(&l.MaxTagBytes, d.MaxTagBytes)
	pick(&l.MaxDataBytes, d.MaxDataBytes)
	pick(&l.MaxQueryItems, d.MaxQueryItems)
	pick(&l.MaxItemTypes, d.MaxItemTypes)
	pick(&l.MaxItemTags, d.MaxItemTags)
	return l
}

// checkString refuses what PostgreSQL text cannot hold or what the limits forbid.
func checkString(field, s string, maxBytes int) error {
	switch {
	case s == "":
		return invalid(field, "must not be empty")
	case len(s) > maxBytes:
		return invalid(field, "is %d bytes, the limit is %d", len(s), maxBytes)
	case !utf8.ValidString(s):
		return invalid(field, "is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return invalid(field, "must not contain NUL characters")
	}
	return nil
}

// ValidateQuery returns an *InputError when q is malformed: an empty or
// oversized type or tag, or more items, types or tags than the limits allow.
func (l Limits) ValidateQuery(field string, q Query) error {
	l = l.withDefaults()
	if len(q.Items) > l.MaxQueryItems {
		return invalid(field+".items", "has %d items, the limit is %d", len(q.Items), l.MaxQueryItems)
	}
	for i, it := range q.Items {
		f := fmt.Sprintf("%s.items[%d]", field, i)
		if len(it.Types) > l.MaxItemTypes {
			return invalid(f+".types", "has %d types, the limit is %d", len(it.Types), l.MaxItemTypes)
		}
		if len(it.Tags) > l.MaxItemTags {
			return invalid(f+".tags", "has %d tags, the limit is %d", len(it.Tags), l.MaxItemTags)
		}
		for j, typ := range it.Types {
			if err := checkString(fmt.Sprintf("%s.types[%d]", f, j), typ, l.MaxTypeBytes); err != nil {
				return err
			}
		}
		for j, tag := range it.Tags {
			if err := checkString(fmt.Sprintf("%s.tags[%d]", f, j), tag, l.MaxTagBytes); err != nil {
				return err
			}
		}
	}
	return nil
}

// ValidateEvents returns an *InputError when events cannot be appended as given,
// among others when some have an id and others do not (see Event.ID). It does
// not change them: Append then generates the ids when none is given, and drops
// repeated tags.
func (l Limits) ValidateEvents(events []Event) error {
	l = l.withDefaults()
	switch {
	case len(events) == 0:
		return invalid("events", "must not be empty")
	case len(events) > l.MaxEventsPerAppend:
		return invalid("events", "has %d events, the limit is %d", len(events), l.MaxEventsPerAppend)
	}
	ids := make(map[uuid.UUID]int, len(events))
	for i, e := range events {
		f := fmt.Sprintf("events[%d]", i)
		// Ids make a retry idempotent only if all of them are given: a
		// generated one is new on every attempt.
		if (e.ID == uuid.Nil) != (events[0].ID == uuid.Nil) {
			return invalid(f+".id", "is %s while events[0].id is %s: give every event of an append an id, or none",
				idState(e.ID), idState(events[0].ID))
		}
		if e.ID != uuid.Nil {
			if j, dup := ids[e.ID]; dup {
				return invalid(f+".id", "repeats the id of events[%d]", j)
			}
			ids[e.ID] = i
		}
		if err := checkString(f+".type", e.Type, l.MaxTypeBytes); err != nil {
			return err
		}
		if len(e.Tags) > l.MaxTagsPerEvent {
			return invalid(f+".tags", "has %d tags, the limit is %d", len(e.Tags), l.MaxTagsPerEvent)
		}
		for j, tag := range e.Tags {
			if err := checkString(fmt.Sprintf("%s.tags[%d]", f, j), tag, l.MaxTagBytes); err != nil {
				return err
			}
		}
		if err := checkMetadata(f+".metadata", e.Metadata, l.MaxTagBytes); err != nil {
			return err
		}
		if len(e.Data) > l.MaxDataBytes {
			return invalid(f+".data", "is %d bytes, the limit is %d", len(e.Data), l.MaxDataBytes)
		}
	}
	return nil
}

func idState(id uuid.UUID) string {
	if id == uuid.Nil {
		return "missing"
	}
	return "given"
}

func checkMetadata(field string, m Metadata, maxBytes int) error {
	if m.CorrelationID != "" {
		if err := checkString(field+".correlation_id", m.CorrelationID, maxBytes); err != nil {
			return err
		}
	}
	if m.CausationID != "" {
		return checkString(field+".causation_id", m.CausationID, maxBytes)
	}
	return nil
}

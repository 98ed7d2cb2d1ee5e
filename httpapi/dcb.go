package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/eventstore"
)

// The DCB HTTP API, the convention of the dcb.events reference test suite,
// so that DCB tools and clients in any language can use the store:
//
//	GET  /dcb/read?query=<JSON>&options=<JSON>
//	POST /dcb/append
//
// Event data is an opaque string, returned exactly as given, except for the
// types the application declares in its registries: their data must decode
// (see RegisterDCB). A failed append condition is a normal answer
// (appendConditionFailed: true), not an error. Malformed input is refused
// with 400 and nothing is written.

type dcbQuery struct {
	Items []dcbItem `json:"items"`
}

type dcbItem struct {
	Types []string `json:"types"`
	Tags  []string `json:"tags"`
}

type dcbReadOptions struct {
	From      *int64 `json:"from"`
	Limit     *int   `json:"limit"`
	Backwards bool   `json:"backwards"`
}

type dcbEvent struct {
	// ID is optional: a client that gives ids can retry an append whose
	// answer it did not get, and the events are stored once.
	ID   string   `json:"id"`
	Type string   `json:"type"`
	Tags []string `json:"tags"`
	Data string   `json:"data"`
}

type dcbStoredEvent struct {
	Type       string    `json:"type"`
	Tags       []string  `json:"tags"`
	Data       string    `json:"data"`
	Position   int64     `json:"position"`
	ID         string    `json:"id"`
	RecordedAt time.Time `json:"recorded_at"`
}

type dcbAppend struct {
	Events    []dcbEvent    `json:"events"`
	Condition *dcbCondition `json:"condition"`
}

type dcbCondition struct {
	FailIfEventsMatch *dcbQuery `json:"failIfEventsMatch"`
	After             *int64    `json:"after"`
}

type dcbAppendResult struct {
	DurationInMicroseconds int64  `json:"durationInMicroseconds"`
	AppendConditionFailed  bool   `json:"appendConditionFailed"`
	Position               *int64 `json:"position,omitempty"`
}

func (q dcbQuery) toQuery() eventstore.Query {
	items := make([]eventstore.QueryItem, len(q.Items))
	for i, it := range q.Items {
		items[i] = eventstore.QueryItem{Types: it.Types, Tags: it.Tags}
	}
	return eventstore.Query{Items: items}
}

// RegisterDCB adds the DCB HTTP API to r. registries are the application's
// event types: an appended event whose type one of them declares must be
// what the application itself would append (Registry.Verify): data that
// decodes as its listeners and decisions will decode it, upcasters
// included, and the tags that data gives. Otherwise the whole append is
// refused with 400 invalid_event_data and nothing is written. Without that,
// one undecodable event would stop every listener that reads its type at
// its position for good (listeners never skip, and the log cannot be
// corrected), and one whose tags name another boundary than its data would
// be folded into the wrong decisions. Events of other types are stored as
// opaque data, and may not carry a tag under a key the registries declare.
func RegisterDCB(r gin.IRoutes, store *eventstore.Store, logger *slog.Logger, registries ...*eventstore.Registry) {
	r.GET("/dcb/read", func(c *gin.Context) { dcbRead(c, store, logger) })
	r.POST("/dcb/append", func(c *gin.Context) { dcbAppendHandler(c, store, logger, registries) })
}

func dcbRead(c *gin.Context, store *eventstore.Store, logger *slog.Logger) {
	var q dcbQuery
	raw, ok := c.GetQuery("query")
	if !ok {
		Error(c, http.StatusBadRequest, "invalid_request", "query parameter 'query' is required, e.g. {\"items\":[]}")
		return
	}
	if err := DecodeJSONBytes([]byte(raw), &q); err != nil {
		Error(c, http.StatusBadRequest, "invalid_request", "query: "+err.Error())
		return
	}
	var o dcbReadOptions
	if raw, ok := c.GetQuery("options"); ok && raw != "" {
		if err := DecodeJSONBytes([]byte(raw), &o); err != nil {
			Error(c, http.StatusBadRequest, "invalid_request", "options: "+err.Error())
			return
		}
	}
	opts := eventstore.ReadOptions{Backwards: o.Backwards}
	if o.From != nil {
		opts.From = *o.From
	}
	if o.Limit != nil {
		if *o.Limit < 1 {
			Error(c, http.StatusBadRequest, "invalid_request", "options.limit must be at least 1")
			return
		}
		opts.Limit = *o.Limit
	}
	query := q.toQuery()
	if err := store.Limits().ValidateQuery("query", query); err != nil {
		StoreError(c, logger, err)
		return
	}

	// Stream: the answer may be the whole log. The first page decides the
	// status; a failure later can only cut the array short, so it is logged.
	next, stop := iter.Pull2(store.Stream(c.Request.Context(), query, opts))
	defer stop()
	first, err, more := next()
	if err != nil {
		StoreError(c, logger, err)
		return
	}
	c.Status(http.StatusOK)
	c.Header("Content-Type", "application/json")
	enc := json.NewEncoder(c.Writer)
	c.Writer.WriteString("[")
	for n := 0; more; n++ {
		if n > 0 {
			c.Writer.WriteString(",")
		}
		if err := enc.Encode(toDCB(first)); err != nil {
			return
		}
		if first, err, more = next(); err != nil {
			logger.ErrorContext(c.Request.Context(), "dcb read failed mid-stream", "error", err)
			return
		}
	}
	c.Writer.WriteString("]")
}

func toDCB(e eventstore.StoredEvent) dcbStoredEvent {
	tags := e.Tags
	if tags == nil {
		tags = []string{}
	}
	return dcbStoredEvent{Type: e.Type, Tags: tags, Data: string(e.Data), Position: e.Position,
		ID: e.ID.String(), RecordedAt: e.RecordedAt}
}

func dcbAppendHandler(c *gin.Context, store *eventstore.Store, logger *slog.Logger, registries []*eventstore.Registry) {
	start := time.Now()
	var req dcbAppend
	if !Decode(c, &req) {
		return
	}
	if req.Events == nil {
		Error(c, http.StatusBadRequest, "invalid_request", "events: required")
		return
	}
	events := make([]eventstore.Event, len(req.Events))
	for i, e := range req.Events {
		events[i] = eventstore.Event{Type: e.Type, Tags: e.Tags, Data: []byte(e.Data)}
		switch err := verify(registries, events[i]); {
		case errors.Is(err, eventstore.ErrTagsDisagree), errors.Is(err, errReservedTag):
			Error(c, http.StatusBadRequest, "invalid_event_data", fmt.Sprintf("events[%d].tags: %v", i, err))
			return
		case err != nil:
			Error(c, http.StatusBadRequest, "invalid_event_data",
				fmt.Sprintf("events[%d].data: not valid data of the application's event type %q: %v", i, e.Type, err))
			return
		}
		if e.ID == "" {
			continue
		}
		id, err := uuid.Parse(e.ID)
		if err != nil || id == uuid.Nil {
			Error(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("events[%d].id: want a UUID other than the nil UUID, got %q", i, e.ID))
			return
		}
		events[i].ID = id
	}
	var cond *eventstore.AppendCondition
	if req.Condition != nil {
		if req.Condition.FailIfEventsMatch == nil {
			Error(c, http.StatusBadRequest, "invalid_request", "condition.failIfEventsMatch: required")
			return
		}
		cond = &eventstore.AppendCondition{FailIfEventsMatch: req.Condition.FailIfEventsMatch.toQuery()}
		if req.Condition.After != nil {
			cond.After = *req.Condition.After
		}
	}
	res, err := store.Append(c.Request.Context(), events, cond)
	out := dcbAppendResult{}
	switch {
	case errors.Is(err, eventstore.ErrAppendConditionFailed):
		out.AppendConditionFailed = true
	case err != nil:
		StoreError(c, logger, err)
		return
	default:
		out.Position = &res.Position
	}
	out.DurationInMicroseconds = time.Since(start).Microseconds()
	c.JSON(http.StatusOK, out)
}

// errReservedTag is verify's error for an event of a type the application
// does not declare, tagged under a key it does.
var errReservedTag = errors.New("that only other types of the application's events carry")

// verify checks e against the application's registries: an event of a type
// one declares must be what its Encode would make (Registry.Verify), and a
// tag under a key one declares is only for that registry's own events. An
// event of another type tagged cart_id:X would be folded into cart X's
// decisions, which could not decode it, nor ever again decide for cart X.
func verify(registries []*eventstore.Registry, e eventstore.Event) error {
	for _, r := range registries {
		switch err := r.Verify(e); {
		case err == nil:
			continue
		case !errors.Is(err, eventstore.ErrUnknownEventType):
			return err
		}
		for _, tag := range e.Tags {
			if key, _, ok := strings.Cut(tag, ":"); ok && r.HasTagKey(key) {
				return fmt.Errorf("the tag %q is under a key (%s) %w, not %q", tag, key, errReservedTag, e.Type)
			}
		}
	}
	return nil
}

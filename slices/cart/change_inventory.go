package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// ChangeInventory records how many of a product are in stock. It arrives on
// the Kafka topic "inventories" as {"product_uuid", "inventory"}, or through
// HTTP. There is no rule to decide: the event is appended as it comes.
//
//	given anything                → InventoryChanged
//	a negative inventory          → refused at the boundary (400, rejected message)
type ChangeInventory struct {
	ProductID uuid.UUID
	Inventory int
}

// MaxInventory bounds an inventory count.
const MaxInventory = 1_000_000_000

type changeInventoryRequest struct {
	ProductID *string `json:"product_id"`
	Inventory *int64  `json:"inventory"`
}

// POST /changeinventory/{product_id}
func (s *Service) changeInventoryHandler(c *gin.Context) {
	var req changeInventoryRequest
	if !httpapi.Decode(c, &req) {
		return
	}
	id, ok := pathID(c, "product_id", req.ProductID)
	if !ok {
		return
	}
	switch {
	case req.Inventory == nil:
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "inventory: required")
		return
	case *req.Inventory < 0 || *req.Inventory > MaxInventory:
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "inventory: must be between 0 and 1000000000")
		return
	}
	e, err := Events.Encode(InventoryChanged{ProductID: id, Inventory: int(*req.Inventory)})
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.Store.Append(c.Request.Context(), []eventstore.Event{e}, nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"product_id": id, "position": res.Position})
}

// TranslateInventory is the translator of the Kafka topic "inventories":
// {"product_uuid": uuid, "inventory": int}. A message that cannot be
// decoded or validated is rejected (kept with its reason, never retried).
func (s *Service) TranslateInventory(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record) error {
	var msg struct {
		ProductUUID *string `json:"product_uuid"`
		Inventory   *int64  `json:"inventory"`
	}
	if err := decodeMessage(rec.Value, &msg); err != nil {
		return reject(err)
	}
	switch {
	case msg.ProductUUID == nil:
		return reject(errors.New("product_uuid: required"))
	case msg.Inventory == nil:
		return reject(errors.New("inventory: required"))
	case *msg.Inventory < 0 || *msg.Inventory > MaxInventory:
		return reject(errors.New("inventory: must be between 0 and 1000000000"))
	}
	id, err := parseID(*msg.ProductUUID)
	if err != nil {
		return reject(fmt.Errorf("product_uuid: %w", err))
	}
	return s.appendTranslated(ctx, tx, rec, InventoryChanged{ProductID: id, Inventory: int(*msg.Inventory)})
}

func reject(err error) error { return fmt.Errorf("%w: %v", kafkabridge.ErrReject, err) }

// decodeMessage decodes a Kafka message's JSON object. Unlike HTTP bodies,
// unknown fields are allowed: other systems produce these messages and may
// add fields, and quarantining every message after a harmless change of
// theirs would be worse than ignoring the field.
func decodeMessage(value []byte, dst any) error {
	if !utf8.Valid(value) {
		return errors.New("message is not valid UTF-8")
	}
	if err := json.Unmarshal(value, dst); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// appendTranslated appends the event of a Kafka message in the consumer's
// transaction. Its id is derived from the message (see messageEventID), so
// even a message consumed twice (the offsets table restored from a backup,
// say) is stored once.
func (s *Service) appendTranslated(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record, v any) error {
	e, err := Events.Encode(v)
	if err != nil {
		return reject(err)
	}
	e.ID = messageEventID(rec)
	_, err = s.Store.AppendTx(ctx, tx, []eventstore.Event{e}, nil)
	return err
}

// messageEventID names a message by its coordinates, timestamp, key and
// value: the same message delivered again gets the same id, while a
// different message at the same coordinates (a broker that lost its data
// hands out offsets again) gets another, instead of passing for a retry of
// the old one and vanishing.
func messageEventID(rec kafkabridge.Record) uuid.UUID {
	name := fmt.Appendf(nil, "%s/%d/%d/%d/%d/", rec.Topic, rec.Partition, rec.Offset, rec.Timestamp.UnixMilli(), len(rec.Key))
	name = append(name, rec.Key...)
	return uuid.NewSHA1(kafkaNamespace, append(name, rec.Value...))
}

// kafkaNamespace is the UUID namespace of events translated from Kafka.
var kafkaNamespace = uuid.MustParse("6f6a1b8e-0d52-4c8f-9a57-2f5a0c2b9e41")

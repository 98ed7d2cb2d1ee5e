package cart

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// ChangePrice records a product's new price. It arrives on the Kafka topic
// "price-changes" as {"product_uuid", "old_price", "new_price"}, or through
// HTTP. Items of that product are then archived (archive_item.go).
//
//	given anything            → PriceChanged
//	a negative price          → refused at the boundary (400, rejected message)
type ChangePrice struct {
	ProductID          uuid.UUID
	OldPrice, NewPrice decimal.Decimal
}

type changePriceRequest struct {
	ProductID *string `json:"product_id"`
	OldPrice  *Money  `json:"old_price"`
	NewPrice  *Money  `json:"new_price"`
}

// POST /changeprice/{product_id}
func (s *Service) changePriceHandler(c *gin.Context) {
	var req changePriceRequest
	if !httpapi.Decode(c, &req) {
		return
	}
	var cmd ChangePrice
	var ok bool
	if cmd.ProductID, ok = pathID(c, "product_id", req.ProductID); !ok {
		return
	}
	if cmd.OldPrice, ok = price(c, "old_price", req.OldPrice); !ok {
		return
	}
	if cmd.NewPrice, ok = price(c, "new_price", req.NewPrice); !ok {
		return
	}
	e, err := Events.Encode(PriceChanged(cmd))
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.Store.Append(c.Request.Context(), []eventstore.Event{e}, nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"product_id": cmd.ProductID, "position": res.Position})
}

// TranslatePriceChange is the translator of the Kafka topic "price-changes":
// {"product_uuid": uuid, "old_price": decimal, "new_price": decimal}.
func (s *Service) TranslatePriceChange(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record) error {
	var msg struct {
		ProductUUID *string `json:"product_uuid"`
		OldPrice    *Money  `json:"old_price"`
		NewPrice    *Money  `json:"new_price"`
	}
	if err := decodeMessage(rec.Value, &msg); err != nil {
		return reject(err)
	}
	switch {
	case msg.ProductUUID == nil:
		return reject(errors.New("product_uuid: required"))
	case msg.OldPrice == nil || msg.NewPrice == nil:
		return reject(errors.New("old_price and new_price: required"))
	}
	oldPrice, err := msg.OldPrice.Amount()
	if err != nil {
		return reject(fmt.Errorf("old_price: %w", err))
	}
	newPrice, err := msg.NewPrice.Amount()
	if err != nil {
		return reject(fmt.Errorf("new_price: %w", err))
	}
	if oldPrice.IsNegative() || newPrice.IsNegative() {
		return reject(errors.New("prices must not be negative"))
	}
	id, err := parseID(*msg.ProductUUID)
	if err != nil {
		return reject(fmt.Errorf("product_uuid: %w", err))
	}
	return s.appendTranslated(ctx, tx, rec, PriceChanged{ProductID: id, OldPrice: oldPrice, NewPrice: newPrice})
}

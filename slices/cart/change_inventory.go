package cart

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
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

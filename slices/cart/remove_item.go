package cart

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// RemoveItem takes an item out of a cart.
//
//	given no event of the cart                          → ErrCartNotFound
//	given CartSubmitted                                 → ErrCartSubmitted
//	given the item never added, removed, archived or
//	the cart cleared since                              → ErrItemNotInCart
//	given the item in the cart                          → CartItemRemoved
type RemoveItem struct {
	CartID, ItemID uuid.UUID
}

var ErrItemNotInCart = errors.New("the item is not in the cart")

func decideRemoveItem(c cart, cmd RemoveItem) ([]any, error) {
	switch {
	case !c.exists:
		return nil, ErrCartNotFound
	case c.submitted:
		return nil, ErrCartSubmitted
	case !c.has(cmd.ItemID):
		return nil, ErrItemNotInCart
	}
	return []any{CartItemRemoved{CartID: cmd.CartID, ItemID: cmd.ItemID}}, nil
}

var removeItem = decide.Decider[cart, RemoveItem]{
	Events: Events,
	Query: func(c RemoveItem) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c.CartID)}}
	},
	Evolve: evolveCart,
	Decide: decideRemoveItem,
}

type removeItemRequest struct {
	CartID *string `json:"cart_id"`
	ItemID *string `json:"item_id"`
}

// POST /removeitem/{cart_id}
func (s *Service) removeItemHandler(c *gin.Context) {
	var req removeItemRequest
	if !httpapi.Decode(c, &req) {
		return
	}
	var cmd RemoveItem
	var ok bool
	if cmd.CartID, ok = pathID(c, "cart_id", req.CartID); !ok {
		return
	}
	if cmd.ItemID, ok = bodyID(c, "item_id", req.ItemID); !ok {
		return
	}
	res, err := decide.Run(c.Request.Context(), s.Store, removeItem, cmd)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"cart_id": cmd.CartID, "position": res.Position})
}

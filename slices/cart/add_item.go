package cart

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// AddItem puts an item in a cart, creating the cart with its first item.
//
//	given CartSubmitted                        → ErrCartSubmitted
//	given three items in the cart              → ErrCartFull
//	given the item already in the cart         → ErrItemAlreadyInCart
//	given the product's last inventory ≤ 0     → ErrOutOfStock (unknown inventory does not block)
//	given no event of the cart                 → CartCreated, CartItemAdded
//	given the cart                             → CartItemAdded
type AddItem struct {
	CartID, ItemID, ProductID uuid.UUID
	Description, Image        string
	Price                     decimal.Decimal
	// Fingerprint is set by the handler (a fresh random UUID), so that
	// deciding stays deterministic.
	Fingerprint string
}

var (
	// ErrCartFull's message is cart.md's, word for word.
	ErrCartFull          = errors.New("Cannot add item. Cart is full (max 3 items).") //lint:ignore ST1005 the spec's message
	ErrItemAlreadyInCart = errors.New("the item is already in the cart")
	ErrOutOfStock        = errors.New("out of stock")
)

// MaxItems is how many items a cart holds.
const MaxItems = 3

// The boundary: the cart's events and the product's inventory changes. Two
// former aggregates, one consistency boundary.
func addItemQuery(c AddItem) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c.CartID), inventoryQuery(c.ProductID)}}
}

type addItemState struct {
	cart      cart
	inventory *int // nil while no inventory is known
}

func evolveAddItem(s addItemState, e any) addItemState {
	if e, ok := e.(InventoryChanged); ok {
		s.inventory = &e.Inventory
		return s
	}
	s.cart = evolveCart(s.cart, e)
	return s
}

func decideAddItem(s addItemState, c AddItem) ([]any, error) {
	switch {
	case s.cart.submitted:
		return nil, ErrCartSubmitted
	case len(s.cart.items) >= MaxItems:
		return nil, ErrCartFull
	case s.cart.has(c.ItemID):
		return nil, ErrItemAlreadyInCart
	case s.inventory != nil && *s.inventory <= 0:
		return nil, ErrOutOfStock
	}
	added := CartItemAdded{CartID: c.CartID, ItemID: c.ItemID, ProductID: c.ProductID,
		Description: c.Description, Image: c.Image, Price: c.Price, Fingerprint: c.Fingerprint}
	if !s.cart.exists {
		return []any{CartCreated{CartID: c.CartID}, added}, nil
	}
	return []any{added}, nil
}

var addItem = decide.Decider[addItemState, AddItem]{
	Events: Events, Query: addItemQuery, Evolve: evolveAddItem, Decide: decideAddItem,
}

type addItemRequest struct {
	CartID      *string `json:"cart_id"`
	ItemID      *string `json:"item_id"`
	ProductID   *string `json:"product_id"`
	Description *string `json:"description"`
	Image       *string `json:"image"`
	Price       *Money  `json:"price"`
}

// POST /additem/{cart_id}
func (s *Service) addItemHandler(c *gin.Context) {
	var req addItemRequest
	if !httpapi.Decode(c, &req) {
		return
	}
	cartID, ok := pathID(c, "cart_id", req.CartID)
	if !ok {
		return
	}
	cmd := AddItem{CartID: cartID, Fingerprint: uuid.NewString()}
	if cmd.ItemID, ok = bodyID(c, "item_id", req.ItemID); !ok {
		return
	}
	if cmd.ProductID, ok = bodyID(c, "product_id", req.ProductID); !ok {
		return
	}
	if cmd.Description, ok = text(c, "description", req.Description, 1000); !ok {
		return
	}
	if cmd.Image, ok = text(c, "image", req.Image, 2048); !ok {
		return
	}
	if cmd.Price, ok = price(c, "price", req.Price); !ok {
		return
	}
	res, err := decide.Run(c.Request.Context(), s.Store, addItem, cmd)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"cart_id": cmd.CartID, "position": res.Position})
}

package cart

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
)

// Cart items, live: the items of a cart, folded from its events on every
// request, so always current. Removed, archived and cleared items are gone;
// the rest are in the order added.
//
//	given no event of the cart      → 404 cart_not_found
//	given the cart                  → its items and their total

// CartItems is the answer of both cart items views (live and stored).
type CartItems struct {
	CartID     uuid.UUID       `json:"cart_id"`
	TotalPrice decimal.Decimal `json:"total_price"`
	Items      []CartItem      `json:"items"`
}

type CartItem struct {
	ItemID      uuid.UUID       `json:"item_id"`
	ProductID   uuid.UUID       `json:"product_id"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	Price       decimal.Decimal `json:"price"`
	Fingerprint string          `json:"fingerprint"`
}

func cartItemsOf(id uuid.UUID, c cart) CartItems {
	items := make([]CartItem, len(c.items))
	for i, it := range c.items {
		items[i] = CartItem{ItemID: it.ItemID, ProductID: it.ProductID, Description: it.Description,
			Image: it.Image, Price: it.Price, Fingerprint: it.Fingerprint}
	}
	return CartItems{CartID: id, TotalPrice: c.total(), Items: items}
}

// readCart folds a cart from its events; it also returns the position the
// fold is consistent at.
func (s *Service) readCart(ctx context.Context, id uuid.UUID) (cart, int64, error) {
	stored, err := s.Store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{cartQuery(id)}}, eventstore.ReadOptions{})
	if err != nil {
		return cart{}, 0, err
	}
	return decide.Fold(cartView, stored)
}

// cartView folds a cart for reading; it decides nothing.
var cartView = decide.Decider[cart, struct{}]{Events: Events, Evolve: evolveCart}

// GET /{cart_id}/cartitems
func (s *Service) cartItemsHandler(c *gin.Context) {
	id, ok := pathID(c, "cart_id", nil)
	if !ok {
		return
	}
	current, _, err := s.readCart(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !current.exists {
		s.fail(c, ErrCartNotFound)
		return
	}
	c.JSON(http.StatusOK, cartItemsOf(id, current))
}

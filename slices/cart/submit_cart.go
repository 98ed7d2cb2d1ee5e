package cart

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
)

// SubmitCart orders what is in a cart.
//
//	given no event of the cart                                    → ErrCartNotFound
//	given no items in the cart                                    → ErrCartEmpty
//	given CartSubmitted                                           → ErrCartAlreadySubmitted
//	given a product's last inventory below its items in the cart  → *OutOfStockError naming the products
//	given the cart                                                → CartSubmitted, one ordered product per
//	                                                                item in the order added, with its own
//	                                                                price, and the total
//
// Its boundary depends on what is in the cart: the cart's events and the
// inventory changes of its products. Products lists those products; when the
// cart holds an item of another product (it changed since they were listed),
// the decision answers errBoundaryChanged and the handler lists them again.
type SubmitCart struct {
	CartID   uuid.UUID
	Products []uuid.UUID
}

var (
	ErrCartEmpty            = errors.New("the cart is empty")
	ErrCartAlreadySubmitted = errors.New("the cart was already submitted")
	errBoundaryChanged      = errors.New("the cart holds products outside the decision's boundary")
)

// OutOfStockError names the products whose known inventory is lower than the
// number of their items in the cart.
type OutOfStockError struct{ Products []uuid.UUID }

func (e *OutOfStockError) Error() string {
	ids := make([]string, len(e.Products))
	for i, p := range e.Products {
		ids[i] = p.String()
	}
	return "out of stock: " + strings.Join(ids, ", ")
}

// Is matches ErrOutOfStock, and an *OutOfStockError naming the same products.
func (e *OutOfStockError) Is(target error) bool {
	if target == ErrOutOfStock {
		return true
	}
	t, ok := target.(*OutOfStockError)
	return ok && slices.Equal(e.Products, t.Products)
}

func submitCartQuery(c SubmitCart) eventstore.Query {
	items := []eventstore.QueryItem{cartQuery(c.CartID)}
	for _, p := range c.Products {
		items = append(items, inventoryQuery(p))
	}
	return eventstore.Query{Items: items}
}

type submitState struct {
	cart        cart
	inventories map[uuid.UUID]int
}

func evolveSubmit(s submitState, e any) submitState {
	if e, ok := e.(InventoryChanged); ok {
		if s.inventories == nil {
			s.inventories = map[uuid.UUID]int{}
		}
		s.inventories[e.ProductID] = e.Inventory
		return s
	}
	s.cart = evolveCart(s.cart, e)
	return s
}

func decideSubmit(s submitState, c SubmitCart) ([]any, error) {
	switch {
	case !s.cart.exists:
		return nil, ErrCartNotFound
	case len(s.cart.items) == 0:
		return nil, ErrCartEmpty
	case s.cart.submitted:
		return nil, ErrCartAlreadySubmitted
	}
	wanted := map[uuid.UUID]int{}
	var order []uuid.UUID
	for _, it := range s.cart.items {
		if !slices.Contains(c.Products, it.ProductID) {
			return nil, errBoundaryChanged
		}
		if wanted[it.ProductID] == 0 {
			order = append(order, it.ProductID)
		}
		wanted[it.ProductID]++
	}
	var short []uuid.UUID
	for _, p := range order {
		if have, known := s.inventories[p]; known && have < wanted[p] {
			short = append(short, p)
		}
	}
	if len(short) > 0 {
		return nil, &OutOfStockError{Products: short}
	}
	ordered := make([]OrderedProduct, len(s.cart.items))
	for i, it := range s.cart.items {
		ordered[i] = OrderedProduct{ItemID: it.ItemID, ProductID: it.ProductID, Price: it.Price}
	}
	return []any{CartSubmitted{CartID: c.CartID, OrderedProducts: ordered, TotalPrice: s.cart.total()}}, nil
}

var submitCart = decide.Decider[submitState, SubmitCart]{
	Events: Events, Query: submitCartQuery, Evolve: evolveSubmit, Decide: decideSubmit,
}

// productsOf lists the distinct products of the items in a cart, in order.
func productsOf(c cart) []uuid.UUID {
	var products []uuid.UUID
	for _, it := range c.items {
		if !slices.Contains(products, it.ProductID) {
			products = append(products, it.ProductID)
		}
	}
	return products
}

// POST /submitcart/{cart_id}
func (s *Service) submitCartHandler(c *gin.Context) {
	id, ok := cartOnlyRequest(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	for range decide.MaxAttempts {
		current, _, err := s.readCart(ctx, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		res, err := decide.Run(ctx, s.Store, submitCart, SubmitCart{CartID: id, Products: productsOf(current)})
		if errors.Is(err, errBoundaryChanged) {
			continue
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"cart_id": id, "position": res.Position})
		return
	}
	s.fail(c, fmt.Errorf("submit: %w", decide.ErrConflict))
}

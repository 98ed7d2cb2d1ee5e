package cart

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
)

// ClearCart empties a cart.
//
//	given no event of the cart    → ErrCartNotFound
//	given CartSubmitted           → ErrCartSubmitted
//	given the cart, even empty    → CartCleared
type ClearCart struct {
	CartID uuid.UUID
}

func decideClearCart(c cart, cmd ClearCart) ([]any, error) {
	switch {
	case !c.exists:
		return nil, ErrCartNotFound
	case c.submitted:
		return nil, ErrCartSubmitted
	}
	return []any{CartCleared{CartID: cmd.CartID}}, nil
}

var clearCart = decide.Decider[cart, ClearCart]{
	Events: Events,
	Query: func(c ClearCart) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c.CartID)}}
	},
	Evolve: evolveCart,
	Decide: decideClearCart,
}

// POST /clearcart/{cart_id}, no body needed.
func (s *Service) clearCartHandler(c *gin.Context) {
	id, ok := cartOnlyRequest(c)
	if !ok {
		return
	}
	res, err := decide.Run(c.Request.Context(), s.Store, clearCart, ClearCart{CartID: id})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"cart_id": id, "position": res.Position})
}

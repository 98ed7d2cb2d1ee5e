package cart

import (
	"log/slog"

	"github.com/gin-gonic/gin"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// Service is the cart's HTTP face and its dependencies.
type Service struct {
	Store      *eventstore.Store
	Logger     *slog.Logger
	ReadModels httpapi.ReadModels
}

// Routes adds the cart's API to r (cart.md, "State changes" and "Read models").
func (s *Service) Routes(r gin.IRoutes) {
	r.POST("/additem/:cart_id", s.addItemHandler)
	r.POST("/removeitem/:cart_id", s.removeItemHandler)
	r.POST("/clearcart/:cart_id", s.clearCartHandler)
	r.POST("/submitcart/:cart_id", s.submitCartHandler)
	r.POST("/changeinventory/:product_id", s.changeInventoryHandler)
	r.POST("/changeprice/:product_id", s.changePriceHandler)
	r.GET("/:cart_id/cartitems", s.cartItemsHandler)
}

package cart

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Service is the cart's HTTP face, listeners, jobs and Kafka translators,
// and their dependencies.
type Service struct {
	Store      *eventstore.Store
	Pool       *pgxpool.Pool // the stored read models' tables
	Logger     *slog.Logger
	ReadModels httpapi.ReadModels
	Jobs       *workqueue.Queue
	Producer   *kafkabridge.Producer

	publishBudget time.Duration // set by RegisterJobs
}

// Listeners are the cart's stored read models and automation triggers.
func (s *Service) Listeners() []listeners.Listener {
	return []listeners.Listener{CartItemsListener(), InventoriesListener(), s.CartsWithProductsListener(), s.PublishCartsListener()}
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
	r.GET("/:cart_id/cartitemsfromdb", s.cartItemsStoredHandler)
	r.GET("/inventories/:product_id", s.inventoryHandler)
	r.GET("/cartswithproducts/:product_id", s.cartsWithProductsHandler)
}

package cart

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/listeners"
)

// Inventories: the last known inventory of each product, in the table
// inventories kept by the listener inventories.
//
//	InventoryChanged   → the product's inventory (a later position wins)
const InventoriesReadModel = "inventories"

// InventoriesListener is the listener that keeps the read model.
func InventoriesListener() listeners.Listener {
	return listeners.Listener{
		Name:  InventoriesReadModel,
		Query: eventstore.Query{Items: []eventstore.QueryItem{{Types: Events.TypesOf(InventoryChanged{})}}},
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			b := &pgx.Batch{}
			for _, e := range events {
				v, err := Events.Decode(e)
				if err != nil {
					return fmt.Errorf("inventories: event at %d: %w", e.Position, err)
				}
				ic := v.(InventoryChanged)
				b.Queue(`INSERT INTO inventories (product_id, inventory, position) VALUES ($1, $2, $3)
					ON CONFLICT (product_id) DO UPDATE SET inventory = EXCLUDED.inventory, position = EXCLUDED.position
					WHERE inventories.position < EXCLUDED.position`, ic.ProductID, ic.Inventory, e.Position)
			}
			return tx.SendBatch(ctx, b).Close()
		},
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "TRUNCATE inventories")
			return err
		},
	}
}

// readInventory reads a product's inventory from the inventories read
// model; pgx.ErrNoRows if none is known.
func readInventory(ctx context.Context, pool *pgxpool.Pool, product uuid.UUID) (int, error) {
	var inventory int
	err := pool.QueryRow(ctx, `SELECT inventory FROM inventories WHERE product_id = $1`, product).Scan(&inventory)
	return inventory, err
}

// GET /inventories/{product_id}
func (s *Service) inventoryHandler(c *gin.Context) {
	id, ok := pathID(c, "product_id", nil)
	if !ok || !s.ReadModels.Await(c, InventoriesReadModel) {
		return
	}
	inventory, err := readInventory(c.Request.Context(), s.Pool, id)
	if errors.Is(err, pgx.ErrNoRows) {
		httpapi.Error(c, http.StatusNotFound, "inventory_not_found", "no inventory is known for this product")
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, struct {
		ProductID uuid.UUID `json:"product_id"`
		Inventory int       `json:"inventory"`
	}{id, inventory})
}

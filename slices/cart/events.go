package cart

import (
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/eventstore"
)

// The cart's events. Tags come from the `tag` struct tags: cart_id, item_id,
// product_id, each a UUID.

type CartCreated struct {
	CartID uuid.UUID `json:"cart_id" tag:"cart_id"`
}

type CartItemAdded struct {
	CartID      uuid.UUID       `json:"cart_id" tag:"cart_id"`
	ItemID      uuid.UUID       `json:"item_id" tag:"item_id"`
	ProductID   uuid.UUID       `json:"product_id" tag:"product_id"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	Price       decimal.Decimal `json:"price"`
	// Fingerprint was added later (chapter 28): events stored before it read
	// as DefaultFingerprint, through the upcaster registered below.
	Fingerprint string `json:"fingerprint"`
}

// DefaultFingerprint is the fingerprint of items added before fingerprints existed.
const DefaultFingerprint = "default-fingerprint"

type CartItemRemoved struct {
	CartID uuid.UUID `json:"cart_id" tag:"cart_id"`
	ItemID uuid.UUID `json:"item_id" tag:"item_id"`
}

type CartCleared struct {
	CartID uuid.UUID `json:"cart_id" tag:"cart_id"`
}

// ItemArchived removes an item whose product's price changed, at the position
// of that PriceChanged.
type ItemArchived struct {
	CartID               uuid.UUID `json:"cart_id" tag:"cart_id"`
	ItemID               uuid.UUID `json:"item_id" tag:"item_id"`
	PriceChangedPosition int64     `json:"price_changed_position"`
}

type CartSubmitted struct {
	CartID          uuid.UUID        `json:"cart_id" tag:"cart_id"`
	OrderedProducts []OrderedProduct `json:"ordered_products"`
	TotalPrice      decimal.Decimal  `json:"total_price"`
}

type OrderedProduct struct {
	ItemID    uuid.UUID       `json:"item_id"`
	ProductID uuid.UUID       `json:"product_id"`
	Price     decimal.Decimal `json:"price"`
}

type CartPublished struct {
	CartID uuid.UUID `json:"cart_id" tag:"cart_id"`
}

type CartPublicationFailed struct {
	CartID uuid.UUID `json:"cart_id" tag:"cart_id"`
	Reason string    `json:"reason"`
}

type InventoryChanged struct {
	ProductID uuid.UUID `json:"product_id" tag:"product_id"`
	Inventory int       `json:"inventory"`
}

type PriceChanged struct {
	ProductID uuid.UUID       `json:"product_id" tag:"product_id"`
	OldPrice  decimal.Decimal `json:"old_price"`
	NewPrice  decimal.Decimal `json:"new_price"`
}

// Events is the registry of the cart's bounded context.
var Events = eventstore.NewRegistry(
	eventstore.Type[CartCreated]("CartCreated"),
	eventstore.Type[CartItemAdded]("CartItemAdded", eventstore.DefaultField("fingerprint", DefaultFingerprint)),
	eventstore.Type[CartItemRemoved]("CartItemRemoved"),
	eventstore.Type[CartCleared]("CartCleared"),
	eventstore.Type[ItemArchived]("ItemArchived"),
	eventstore.Type[CartSubmitted]("CartSubmitted"),
	eventstore.Type[CartPublished]("CartPublished"),
	eventstore.Type[CartPublicationFailed]("CartPublicationFailed"),
	eventstore.Type[InventoryChanged]("InventoryChanged"),
	eventstore.Type[PriceChanged]("PriceChanged"),
)

func cartTag(id uuid.UUID) string    { return eventstore.Tag("cart_id", id) }
func productTag(id uuid.UUID) string { return eventstore.Tag("product_id", id) }

// cartQuery is every event of one cart.
func cartQuery(id uuid.UUID) eventstore.QueryItem {
	return eventstore.QueryItem{Tags: []string{cartTag(id)}}
}

// inventoryQuery is the inventory changes of one product.
func inventoryQuery(id uuid.UUID) eventstore.QueryItem {
	return eventstore.QueryItem{Types: Events.TypesOf(InventoryChanged{}), Tags: []string{productTag(id)}}
}

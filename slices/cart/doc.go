// Package cart is the shopping cart of the event model in Martin Dilger's
// Understanding Event Sourcing (chapters 21–28), as vertical slices over the
// DCB event store: one file per use case, its Given-When-Then tests beside it.
//
// State changes (commands): add item (add_item.go), remove item, clear cart,
// submit cart, change inventory and change price (HTTP and Kafka). Each is a
// decision whose query is its consistency boundary: adding an item reads the
// cart and the inventory of the product, one boundary across two former
// aggregates, which is what DCB is for.
//
// State views: cart items folded live from the cart's events (cart_items.go),
// and the stored read models kept by listeners: cart items
// (cart_items_stored.go), inventories and carts with products.
//
// Automations: archive item when a product's price changes
// (archive_item.go) and publish a submitted cart to Kafka (publish_cart.go),
// both as jobs enqueued in a listener's transaction.
//
// The events are in events.go; the spec is shared/docs/cart.md.
package cart

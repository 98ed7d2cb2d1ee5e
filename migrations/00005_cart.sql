-- +goose Up

-- Stored read models of the cart, each kept by the listener of the same name
-- and emptied by --reset-read-model. Rows remember the position of the event
-- that last changed them, so that an event applied twice changes nothing.

-- cart_items: carts (so that an empty cart answers 200 and an unknown one
-- 404) and their items, in the order added.
CREATE TABLE cart_items_carts (
    cart_id  uuid PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE cart_items (
    cart_id        uuid    NOT NULL,
    item_id        uuid    NOT NULL,
    product_id     uuid    NOT NULL,
    description    text    NOT NULL,
    image          text    NOT NULL,
    price          numeric NOT NULL,
    fingerprint    text    NOT NULL,
    added_position bigint  NOT NULL,
    PRIMARY KEY (cart_id, item_id)
);

-- inventories: the last known inventory of each product.
CREATE TABLE inventories (
    product_id uuid PRIMARY KEY,
    inventory  int    NOT NULL,
    position   bigint NOT NULL
);

-- carts_with_products: every item of a product in a cart not yet submitted.
CREATE TABLE carts_with_products (
    cart_id    uuid   NOT NULL,
    item_id    uuid   NOT NULL,
    product_id uuid   NOT NULL,
    position   bigint NOT NULL,
    PRIMARY KEY (cart_id, item_id)
);
CREATE INDEX carts_with_products_product ON carts_with_products (product_id, cart_id, item_id);

-- +goose Down
DROP TABLE carts_with_products;
DROP TABLE inventories;
DROP TABLE cart_items;
DROP TABLE cart_items_carts;

-- +goose Up

-- An item id can leave a cart and come back. The fingerprint of the
-- CartItemAdded tells the two apart, so that archiving the item for a price
-- change made before it came back leaves it alone. Rows from before this
-- migration have '' (any instance), until the read model is rebuilt.
ALTER TABLE carts_with_products ADD COLUMN fingerprint text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE carts_with_products DROP COLUMN fingerprint;

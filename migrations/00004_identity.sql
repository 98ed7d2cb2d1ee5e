-- +goose Up

-- The stored read model of GET /users/me, kept by the listener "users".
-- Each row remembers the position of the event that last changed it, so that
-- applying an event twice changes nothing.
CREATE TABLE users (
    user_id       uuid PRIMARY KEY,
    email         text        NOT NULL,
    active        boolean     NOT NULL,
    registered_at timestamptz NOT NULL,
    last_login_at timestamptz,
    position      bigint      NOT NULL
);

-- Login attempts per client address and minute, shared by every replica.
CREATE TABLE login_throttle (
    client       text        NOT NULL,
    window_start timestamptz NOT NULL,
    attempts     int         NOT NULL,
    PRIMARY KEY (client, window_start)
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);

-- +goose Down
DROP TABLE login_throttle;
DROP TABLE users;

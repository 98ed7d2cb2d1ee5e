package eventstore_test

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestRefusedConnectionsAreUnavailable: when no connection can be made,
// whatever the reason (nothing listens, or the server answers that the
// database accepts no connections), the error of the store and that of a
// read model's own query are IsUnavailable, which HTTP answers with 503, not
// 500.
func TestRefusedConnectionsAreUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := eventstoretest.DatabaseURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	admin, err := pgx.Connect(ctx, eventstoretest.ServerURL())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	ident := pgx.Identifier{cfg.ConnConfig.Database}.Sanitize()
	_, err = admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deaf := ln.Addr().String()
	require.NoError(t, ln.Close())

	for name, url := range map[string]string{
		"NotAcceptingConnections": url,
		"NothingListens":          "postgres://postgres@" + deaf + "/x?connect_timeout=5",
	} {
		t.Run(name, func(t *testing.T) {
			pool, err := pgxpool.New(ctx, url)
			require.NoError(t, err)
			defer pool.Close()
			s := eventstore.New(pool, eventstore.Options{})
			defer s.Close()
			_, err = s.Read(ctx, eventstore.Query{}, eventstore.ReadOptions{})
			require.Error(t, err)
			require.True(t, eventstore.IsUnavailable(err), "%v", err)
			_, err = s.Append(ctx, []eventstore.Event{{Type: "A"}}, nil)
			require.True(t, eventstore.IsUnavailable(err), "%v", err)
			err = pool.QueryRow(ctx, "SELECT 1").Scan(new(int))
			require.True(t, eventstore.IsUnavailable(err), "a pool's own error: %v", err)
		})
	}
}

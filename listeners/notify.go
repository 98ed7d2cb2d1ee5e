package listeners

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// eventsChannel is notified by the event store when an append commits,
	// with the types appended as a JSON array, or '' (dcb_append,
	// migrations/00009_dcb_append_notifies_types.sql).
	eventsChannel = "dcb_events"
	// controlChannel is notified, with a listener's name, when its lease is
	// released or it is reset.
	controlChannel = "dcb_listeners"
	// applicationName marks the notification connection in pg_stat_activity.
	applicationName = "dcbkit-listeners"
)

// listen keeps one connection listening on both channels and fans the
// notifications out to the runners without blocking, until ctx is done. When
// the connection fails it reconnects with backoff; polling covers the gap,
// and every runner is woken on reconnection in case it missed something.
func (r *Runtime) listen(ctx context.Context) {
	failures := 0
	for {
		listened, err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			failures = 0
		}
		failures++
		wait := r.opts.backoff(failures)
		r.log.Warn("listeners: notification connection lost; polling until it is back", "err", err, "retry_in", wait)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// listenOnce connects, listens and dispatches until the connection fails or
// ctx is done. It reports whether it got as far as listening.
func (r *Runtime) listenOnce(ctx context.Context) (bool, error) {
	cfg := r.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = applicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	for _, ch := range []string{eventsChannel, controlChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, err
		}
	}
	// Whatever was notified while nobody listened is lost: look now.
	for _, rn := range r.runners {
		poke(rn.wake)
		poke(rn.control)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case eventsChannel:
			appended := appendedTypes(n.Payload)
			for _, rn := range r.runners {
				if rn.reads(appended) {
					poke(rn.wake)
				} else {
					poke(rn.stir)
				}
			}
		case controlChannel:
			if rn := r.byName[n.Payload]; rn != nil {
				poke(rn.control)
			}
		}
	}
}

// appendedTypes decodes the payload of an events notification: the types
// appended, or nil when it does not say (an empty payload, as from a store
// before 00009, or one that cannot be read: then every listener wakes).
func appendedTypes(payload string) []string {
	var types []string
	if json.Unmarshal([]byte(payload), &types) != nil {
		return nil
	}
	return types
}

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// PositionHeader tells which log position a stored read model's answer is
// consistent with.
const PositionHeader = "X-Read-Model-Position"

// DefaultReadModelWait bounds how long a request with ?min_position waits.
const DefaultReadModelWait = 5 * time.Second

// Checkpoints is what read-your-writes needs from the listener runtime.
type Checkpoints interface {
	// WaitFor returns the checkpoint of the named read model once it is at
	// least position, or the context's error.
	WaitFor(ctx context.Context, name string, position int64) (int64, error)
}

// ReadModels gives stored read models read-your-writes.
type ReadModels struct {
	Checkpoints Checkpoints
	// Wait bounds how long a request waits (default DefaultReadModelWait).
	Wait time.Duration
}

// Await makes a stored read model's answer consistent with the caller's
// writes: with ?min_position=N it waits until the read model has handled the
// log up to N. It sets PositionHeader. On a malformed parameter it answers
// 400, on timeout 503 read_model_lagging with Retry-After, and returns false.
func (r ReadModels) Await(c *gin.Context, name string) bool {
	return r.AwaitPosition(c, name, 0)
}

// AwaitPosition is Await that also waits for position at least, for a
// handler that knows which write its caller must see.
func (r ReadModels) AwaitPosition(c *gin.Context, name string, position int64) bool {
	min := position
	if raw, ok := c.GetQuery("min_position"); ok {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v < 0 {
			Error(c, http.StatusBadRequest, "invalid_request", "min_position must be a non-negative integer")
			return false
		}
		min = max(min, v)
	}
	wait := r.Wait
	if wait <= 0 {
		wait = DefaultReadModelWait
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
	defer cancel()
	pos, err := r.Checkpoints.WaitFor(ctx, name, min)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
		c.Header("Retry-After", "1")
		Error(c, http.StatusServiceUnavailable, "read_model_lagging",
			"the read model has not caught up with position "+strconv.FormatInt(min, 10)+" yet")
		return false
	case err != nil:
		c.Header("Retry-After", "1")
		Error(c, http.StatusServiceUnavailable, "unavailable", "the read model is unavailable; try again shortly")
		return false
	}
	c.Header(PositionHeader, strconv.FormatInt(pos, 10))
	return true
}

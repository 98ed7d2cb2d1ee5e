package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrAppendConditionFailed is returned by Append when an event matching the
	// condition's query exists after the condition's position. Nothing was
	// written. Deciding again on fresh state is the usual answer.
	ErrAppendConditionFailed = errors.New("eventstore: append condition failed")

	// ErrInvalidInput is matched (errors.Is) by every *InputError.
	ErrInvalidInput = errors.New("eventstore: invalid input")

	// ErrUnavailable is matched by errors that mean PostgreSQL could not be
	// reached or went away, or that an append's group commit ran out of
	// Options.BatchTimeout; the operation may be retried later. For an append
	// the outcome is unknown, and retrying with the same event ids is safe.
	ErrUnavailable = errors.New("eventstore: database unavailable")

	// ErrIDReused is returned by Append when some, but not all, of the given
	// event ids are already stored, by another append: a retry must resend
	// the same events, with the same ids.
	ErrIDReused = errors.New("eventstore: event ids already used by another append")

	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("eventstore: store closed")
)

// InputError describes input refused before anything was written.
type InputError struct {
	// Field locates the offending value, e.g. "events[2].tags[0]" or "query.items[1].types".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("eventstore: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidInput) true for every *InputError.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(field, format string, args ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// translate wraps a database error once, with what this package knows of it.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("eventstore: %s: %w", op, err)
	}
	if unavailable(err) {
		return fmt.Errorf("eventstore: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("eventstore: %s: %w", op, err)
}

// IsUnavailable reports whether err, from this package or straight from pgx,
// means that PostgreSQL could not be used at all (down, restarting,
// unreachable), as opposed to having refused a statement.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) || unavailable(err) }

func unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// No connection, whatever the server said: it is shutting down or
		// starting, the database accepts no connections (55000), there are
		// too many, or the credentials are refused.
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

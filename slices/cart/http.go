package cart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/httpapi"
)

// What the handlers share: reading ids, money and text from requests, and
// answering with the cart's error codes.

// Money is a decimal amount in a request body or a Kafka message, accepted
// as a JSON number or a string holding one, never through a float.
// Decoding keeps the JSON value as sent and Amount reads it: an error
// returned by UnmarshalJSON would reach the client without the field's
// name, which encoding/json does not add to it.
type Money struct{ raw json.RawMessage }

// UnmarshalJSON keeps the value for Amount. It never fails.
func (m *Money) UnmarshalJSON(b []byte) error {
	m.raw = bytes.Clone(b)
	return nil
}

// Amount returns the amount, or an error saying what was expected and what
// came instead, for the caller to prefix with the field's name.
func (m Money) Amount() (decimal.Decimal, error) { return parseMoney(m.raw) }

// maxMoneyChars bounds the text parsed, so that reading an amount costs
// little whatever a body holds.
const maxMoneyChars = 40

const moneyExpected = "expected a JSON number or a string holding one, such as 12.34 or \"12.34\""

func parseMoney(raw []byte) (decimal.Decimal, error) {
	b := bytes.TrimSpace(raw)
	text, kind := string(b), "number"
	switch {
	case len(b) == 0 || strings.IndexByte("tfn{[", b[0]) >= 0:
		return decimal.Zero, fmt.Errorf("not a decimal number: %s, got JSON %s", moneyExpected, jsonKind(b))
	case b[0] == '"':
		kind = "string"
		if err := json.Unmarshal(b, &text); err != nil {
			return decimal.Zero, fmt.Errorf("not a decimal number: %s, got malformed JSON", moneyExpected)
		}
	}
	if n := utf8.RuneCountInString(text); n > maxMoneyChars {
		return decimal.Zero, fmt.Errorf("too many digits: expected a decimal number of at most %d characters, got a JSON %s of %d", maxMoneyChars, kind, n)
	}
	d, err := decimal.NewFromString(text)
	switch {
	case err != nil:
		return decimal.Zero, fmt.Errorf("not a decimal number: %s, got JSON %s %s", moneyExpected, kind, b)
	case d.Exponent() < -8:
		return decimal.Zero, fmt.Errorf("expected an amount with at most 8 decimal places, got JSON %s %s with %d", kind, b, -d.Exponent())
	case d.Abs().GreaterThanOrEqual(maxMoney):
		return decimal.Zero, fmt.Errorf("out of range: expected an amount below %s in absolute value, got JSON %s %s", maxMoney, kind, b)
	}
	return d, nil
}

// jsonKind names a JSON value that is neither a number nor a string, as
// encoding/json does in its errors.
func jsonKind(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == 'n':
		return "null"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	}
	return "bool"
}

var maxMoney = decimal.New(1, 15)

// parseID accepts only version 7 UUIDs, the ids of this context.
func parseID(raw string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil || id.Version() != 7 || len(raw) != 36 {
		return uuid.Nil, errors.New("version 7 UUID required")
	}
	return id, nil
}

// pathID reads the id in the path parameter name and checks that the body's
// copy, when given, is the same.
func pathID(c *gin.Context, name string, body *string) (uuid.UUID, bool) {
	id, err := parseID(c.Param(name))
	if err != nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_id", fmt.Sprintf("%s in the path: %v", name, err))
		return uuid.Nil, false
	}
	if body != nil {
		bodyID, err := parseID(*body)
		if err != nil {
			httpapi.Error(c, http.StatusBadRequest, "invalid_id", fmt.Sprintf("%s: %v", name, err))
			return uuid.Nil, false
		}
		if bodyID != id {
			httpapi.Error(c, http.StatusBadRequest, "id_mismatch", fmt.Sprintf("%s in the body differs from the path", name))
			return uuid.Nil, false
		}
	}
	return id, true
}

// bodyID reads a required id of the body.
func bodyID(c *gin.Context, name string, raw *string) (uuid.UUID, bool) {
	if raw == nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", name+": required")
		return uuid.Nil, false
	}
	id, err := parseID(*raw)
	if err != nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_id", fmt.Sprintf("%s: %v", name, err))
		return uuid.Nil, false
	}
	return id, true
}

// text reads a required string of at most max characters. It refuses NUL,
// which PostgreSQL text cannot hold: the cart_items listener could never
// store the item, and would retry it forever.
func text(c *gin.Context, name string, raw *string, max int) (string, bool) {
	switch {
	case raw == nil:
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", name+": required")
		return "", false
	case strings.ContainsRune(*raw, 0):
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", name+": must not contain NUL characters")
		return "", false
	case utf8.RuneCountInString(*raw) > max:
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s: at most %d characters", name, max))
		return "", false
	}
	return *raw, true
}

// price reads a required, non-negative amount.
func price(c *gin.Context, name string, m *Money) (decimal.Decimal, bool) {
	if m == nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", name+": required")
		return decimal.Zero, false
	}
	d, err := m.Amount()
	switch {
	case err != nil:
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s: %v", name, err))
		return decimal.Zero, false
	case d.IsNegative():
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", name+": must not be negative")
		return decimal.Zero, false
	}
	return d, true
}

// fail answers for an error of a decision: the rule that refused, or what
// httpapi says of store errors.
func (s *Service) fail(c *gin.Context, err error) {
	var stock *OutOfStockError
	switch {
	case errors.Is(err, ErrCartNotFound):
		httpapi.Error(c, http.StatusNotFound, "cart_not_found", "cart not found")
	case errors.As(err, &stock):
		httpapi.Error(c, http.StatusConflict, "out_of_stock", stock.Error())
	case errors.Is(err, ErrOutOfStock):
		httpapi.Error(c, http.StatusConflict, "out_of_stock", "the product is out of stock")
	case errors.Is(err, decide.ErrConflict):
		httpapi.Error(c, http.StatusConflict, "concurrency_conflict", "the cart changed too often while deciding; try again")
	default:
		for _, r := range rules {
			if errors.Is(err, r.err) {
				httpapi.Error(c, http.StatusConflict, r.code, r.err.Error())
				return
			}
		}
		httpapi.StoreError(c, s.Logger, err)
	}
}

// rules are the business rules answered with 409 and their codes.
var rules = []struct {
	err  error
	code string
}{
	{ErrCartFull, "cart_full"},
	{ErrCartSubmitted, "cart_submitted"},
	{ErrItemNotInCart, "item_not_in_cart"},
	{ErrItemAlreadyInCart, "item_already_in_cart"},
	{ErrCartEmpty, "cart_empty"},
	{ErrCartAlreadySubmitted, "cart_already_submitted"},
}

// cartOnlyRequest reads the cart id of a command whose body is optional and
// holds at most the cart id: {"cart_id"}.
func cartOnlyRequest(c *gin.Context) (uuid.UUID, bool) {
	var req struct {
		CartID *string `json:"cart_id"`
	}
	if !decodeOptional(c, &req) {
		return uuid.Nil, false
	}
	return pathID(c, "cart_id", req.CartID)
}

// decodeOptional decodes a body that may be empty.
func decodeOptional(c *gin.Context, dst any) bool {
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.Error(c, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the limit of 1 MiB")
			return false
		}
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "could not read the body")
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return true
	}
	if err := httpapi.DecodeJSONBytes(b, dst); err != nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", err.Error())
		return false
	}
	return true
}

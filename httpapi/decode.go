package httpapi

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
)

// Decode reads the request body as exactly one JSON value into dst, refusing
// unknown fields. On failure it answers 400 invalid_request with what is
// wrong and where (or 413 when the body is over the limit) and returns false.
func Decode(c *gin.Context, dst any) bool {
	if err := DecodeJSON(c.Request.Body, dst); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			c.Header("Connection", "close")
			Error(c, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the limit of 1 MiB")
			return false
		}
		Error(c, http.StatusBadRequest, "invalid_request", err.Error())
		return false
	}
	return true
}

// DecodeJSON decodes exactly one JSON value from r into dst, refusing text
// that is not UTF-8, unknown fields and trailing data, with errors that say
// where the problem is. It returns r's error as is (such as
// *http.MaxBytesError).
func DecodeJSON(r io.Reader, dst any) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return DecodeJSONBytes(b, dst)
}

// DecodeJSONBytes is DecodeJSON on a byte slice. encoding/json would turn
// bytes that are not UTF-8 into U+FFFD, storing something else than was
// sent (RFC 8259 requires UTF-8), so such text is refused first.
func DecodeJSONBytes(b []byte, dst any) error {
	if !utf8.Valid(b) {
		return errors.New("JSON text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("body must hold a single JSON value")
	}
	return nil
}

func describe(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return errors.New("body must be a JSON value, got nothing")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body is truncated JSON")
	case errors.As(err, &syntax):
		return fmt.Errorf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Errorf("field %q: expected %s, got JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Errorf("expected %s, got JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	// encoding/json has no error type for an unknown field (DisallowUnknownFields);
	// its message is the only way to tell, and TestMiddleware pins it.
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return goKind
}

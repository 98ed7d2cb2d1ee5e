package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
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
			return fmt.Errorf("field %q: expected %s, got JSON %s", typ.Field, expected(typ), typ.Value)
		}
		return fmt.Errorf("expected %s, got JSON %s", expected(typ), typ.Value)
	// encoding/json has no error type for an unknown field (DisallowUnknownFields);
	// its message is the only way to tell, and TestMiddleware pins it.
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

// expected says what JSON a Go type takes. A JSON number refused by a
// number type did not fit it, so the answer then says what fits: "expected
// a number, got JSON number 1.5" would contradict itself.
func expected(typ *json.UnmarshalTypeError) string {
	t := typ.Type
	gotNumber := strings.HasPrefix(typ.Value, "number")
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if gotNumber {
			shift := 64 - t.Bits()
			return fmt.Sprintf("a number that is an integer from %d to %d", int64(math.MinInt64)>>shift, int64(math.MaxInt64)>>shift)
		}
		return "a number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if gotNumber {
			return fmt.Sprintf("a number that is an integer from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
		}
		return "a number"
	case reflect.Float32, reflect.Float64:
		if gotNumber {
			return fmt.Sprintf("a number within the range of a %d-bit float", t.Bits())
		}
		return "a number"
	}
	return t.Kind().String()
}

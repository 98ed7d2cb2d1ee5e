package httpapi_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/httpapi"
)

// TestDecodeSaysWhatFits: a decode error names the field and what it takes.
// A JSON number that a number field refuses did not fit it, and the error
// says what fits (an integer in the type's range), not that a number was
// expected.
func TestDecodeSaysWhatFits(t *testing.T) {
	t.Parallel()
	type inner struct {
		Small int8 `json:"small"`
	}
	type body struct {
		Count  *int64  `json:"count"`
		Small  uint16  `json:"small"`
		Ratio  float32 `json:"ratio"`
		Name   string  `json:"name"`
		On     bool    `json:"on"`
		List   []int   `json:"list"`
		Nested inner   `json:"nested"`
	}
	cases := []struct{ name, body, msg string }{
		{"Fraction", `{"count":1.5}`, `field "count": expected a number that is an integer from -9223372036854775808 to 9223372036854775807, got JSON number 1.5`},
		{"Exponent", `{"count":1e3}`, `field "count": expected a number that is an integer from -9223372036854775808 to 9223372036854775807, got JSON number 1e3`},
		{"TooLarge", `{"count":9223372036854775808}`, `field "count": expected a number that is an integer from -9223372036854775808 to 9223372036854775807, got JSON number 9223372036854775808`},
		{"IntString", `{"count":"7"}`, `field "count": expected a number, got JSON string`},
		{"UintNegative", `{"small":-1}`, `field "small": expected a number that is an integer from 0 to 65535, got JSON number -1`},
		{"NestedInt8", `{"nested":{"small":200}}`, `field "nested.small": expected a number that is an integer from -128 to 127, got JSON number 200`},
		{"FloatHuge", `{"ratio":1e400}`, `field "ratio": expected a number within the range of a 32-bit float, got JSON number 1e400`},
		{"FloatBool", `{"ratio":true}`, `field "ratio": expected a number, got JSON bool`},
		{"StringNumber", `{"name":5}`, `field "name": expected a string, got JSON number`},
		{"BoolString", `{"on":"yes"}`, `field "on": expected a boolean, got JSON string`},
		{"ArrayObject", `{"list":{}}`, `field "list": expected an array, got JSON object`},
		{"ArrayItem", `{"list":[1,2.5]}`, `field "list": expected a number that is an integer from -9223372036854775808 to 9223372036854775807, got JSON number 2.5`},
		{"NotAnObject", `[]`, `expected an object, got JSON array`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var dst body
			err := httpapi.DecodeJSONBytes([]byte(c.body), &dst)
			require.EqualError(t, err, c.msg)
		})
	}
}

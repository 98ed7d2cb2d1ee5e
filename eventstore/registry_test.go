package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

type itemAdded struct {
	CartID      uuid.UUID `json:"cart_id" tag:"cart_id"`
	ProductID   uuid.UUID `json:"product_id" tag:"product_id"`
	Price       string    `json:"price"`
	Fingerprint string    `json:"fingerprint"`
}

type renamed struct {
	Name string `json:"name" tag:"name"`
}

// registered has a tag that is not part of its data.
type registered struct {
	UserID    uuid.UUID `json:"user_id" tag:"user_id"`
	EmailHash string    `json:"-" tag:"email_hash"`
	Email     string    `json:"email"`
}

var registry = eventstore.NewRegistry(
	eventstore.Type[itemAdded]("ItemAdded", eventstore.DefaultField("fingerprint", "default-fingerprint")),
	eventstore.Type[renamed]("Renamed"),
	eventstore.Type[registered]("Registered"),
)

func TestRegistryTagOutsideData(t *testing.T) {
	t.Parallel()
	v := registered{UserID: uuid.Must(uuid.NewV7()), EmailHash: "abc123", Email: "a@example.com"}
	e, err := registry.Encode(v)
	require.NoError(t, err)
	require.Equal(t, []string{"user_id:" + v.UserID.String(), "email_hash:abc123"}, e.Tags)
	require.NotContains(t, string(e.Data), "abc123", "the tag is not in the data")
	back, err := registry.Decode(eventstore.StoredEvent{Event: e})
	require.NoError(t, err)
	require.Equal(t, v, back, "it is filled from the stored tag")

	_, err = registry.Decode(eventstore.StoredEvent{Event: eventstore.Event{Type: "Registered", Data: e.Data, Tags: e.Tags[:1]}})
	require.ErrorContains(t, err, "tag email_hash: missing")
	require.Panics(t, func() {
		type bad struct {
			N int `json:"-" tag:"n"`
		}
		eventstore.NewRegistry(eventstore.Type[bad]("Bad"))
	})
}

func TestRegistryEncodeDecode(t *testing.T) {
	t.Parallel()
	v := itemAdded{CartID: uuid.Must(uuid.NewV7()), ProductID: uuid.Must(uuid.NewV7()), Price: "1.50", Fingerprint: "f"}
	e, err := registry.Encode(v)
	require.NoError(t, err)
	require.Equal(t, "ItemAdded", e.Type)
	require.Equal(t, []string{eventstore.Tag("cart_id", v.CartID), eventstore.Tag("product_id", v.ProductID)}, e.Tags)
	require.Equal(t, "cart_id:"+v.CartID.String(), e.Tags[0])
	require.JSONEq(t, `{"cart_id":"`+v.CartID.String()+`","product_id":"`+v.ProductID.String()+`","price":"1.50","fingerprint":"f"}`, string(e.Data))

	back, err := registry.Decode(eventstore.StoredEvent{Event: e})
	require.NoError(t, err)
	require.Equal(t, v, back, "decoding returns the struct value, not a pointer")

	require.Equal(t, []string{"ItemAdded", "Renamed"}, registry.TypesOf(itemAdded{}, renamed{}))
}

func TestRegistryRefuses(t *testing.T) {
	t.Parallel()
	_, err := registry.Encode(itemAdded{ProductID: uuid.Must(uuid.NewV7())})
	require.ErrorContains(t, err, "tag field CartID is empty", "an event must not land in an empty boundary")

	_, err = registry.Encode(struct{ X int }{})
	require.ErrorIs(t, err, eventstore.ErrUnknownEventType)
	_, err = registry.Encode(&renamed{Name: "n"})
	require.ErrorIs(t, err, eventstore.ErrUnknownEventType, "pointers are not the registered type")

	_, err = registry.Decode(eventstore.StoredEvent{Event: eventstore.Event{Type: "Nope", Data: []byte(`{}`)}})
	require.ErrorIs(t, err, eventstore.ErrUnknownEventType)
	_, err = registry.Decode(eventstore.StoredEvent{Event: eventstore.Event{Type: "Renamed", Data: []byte(`{"name":`)}})
	require.ErrorContains(t, err, "decode Renamed")

	require.Panics(t, func() { eventstore.NewRegistry(eventstore.Type[renamed]("A"), eventstore.Type[renamed]("B")) })
	require.Panics(t, func() { eventstore.NewRegistry(eventstore.Type[renamed]("A"), eventstore.Type[itemAdded]("A")) })
	require.Panics(t, func() { eventstore.NewRegistry(eventstore.Type[int]("A")) })
	require.Panics(t, func() { registry.TypeOf(struct{}{}) })
}

// TestUpcasterReadsOldShape stores the raw JSON of the event's old shape (no
// fingerprint) directly, bypassing the typed encoder, and reads it back
// through the normal path: the upcaster fills in the default. A current
// document passes through unchanged.
func TestUpcasterReadsOldShape(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	cart, product := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	tags := []string{eventstore.Tag("cart_id", cart), eventstore.Tag("product_id", product)}
	old := `{"cart_id":"` + cart.String() + `","product_id":"` + product.String() + `","price":"2.00"}`
	current := `{"cart_id":"` + cart.String() + `","product_id":"` + product.String() + `","price":"3.00","fingerprint":"abc"}`
	_, err := s.Append(ctx, []eventstore.Event{
		{Type: "ItemAdded", Tags: tags, Data: []byte(old)},
		{Type: "ItemAdded", Tags: tags, Data: []byte(current)},
	}, nil)
	require.NoError(t, err)

	stored, err := s.Read(ctx, query(item{Types: registry.TypesOf(itemAdded{}), Tags: tags[:1]}), eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 2)
	require.JSONEq(t, old, string(stored[0].Data), "the stored event is never rewritten")
	first, err := registry.Decode(stored[0])
	require.NoError(t, err)
	second, err := registry.Decode(stored[1])
	require.NoError(t, err)
	require.Equal(t, itemAdded{CartID: cart, ProductID: product, Price: "2.00", Fingerprint: "default-fingerprint"}, first)
	require.Equal(t, itemAdded{CartID: cart, ProductID: product, Price: "3.00", Fingerprint: "abc"}, second)
}

type titled struct {
	Title string `json:"title"`
	Pages int    `json:"pages"`
}

// TestUpcasterKinds: a JSON rewrite (a renamed field) and a default for a
// field added later apply in order; a current document is left as it is;
// wiring mistakes panic.
func TestUpcasterKinds(t *testing.T) {
	t.Parallel()
	rename := eventstore.UpcastJSON(func(data []byte) ([]byte, error) {
		return []byte(strings.Replace(string(data), `"name":`, `"title":`, 1)), nil
	})
	r := eventstore.NewRegistry(eventstore.Type[titled]("Titled", rename, eventstore.DefaultField("pages", 1)))
	for raw, want := range map[string]titled{
		`{"name":"Old"}`:             {Title: "Old", Pages: 1},
		`{"title":"New","pages":7}`:  {Title: "New", Pages: 7},
		`{"title":"Zero","pages":0}`: {Title: "Zero", Pages: 0},
	} {
		got, err := r.Decode(eventstore.StoredEvent{Event: eventstore.Event{Type: "Titled", Data: []byte(raw)}})
		require.NoError(t, err)
		require.Equal(t, want, got, raw)
	}
	require.Panics(t, func() { eventstore.NewRegistry(eventstore.Type[titled]("T", eventstore.DefaultField("nope", 1))) })
	require.Panics(t, func() { eventstore.NewRegistry(eventstore.Type[titled]("T", eventstore.DefaultField("pages", "x"))) })
}

type labelled struct {
	Attrs  map[string]string `json:"attrs"`
	Labels []string          `json:"labels"`
	Owner  *string           `json:"owner"`
}

var labelledRegistry = eventstore.NewRegistry(eventstore.Type[labelled]("Labelled",
	eventstore.DefaultField("attrs", map[string]string{}),
	eventstore.DefaultField("labels", []string{"none"}),
	eventstore.DefaultField("owner", new("nobody"))))

func decodeLabelled(t assert.TestingT, raw string) labelled {
	v, err := labelledRegistry.Decode(eventstore.StoredEvent{Event: eventstore.Event{Type: "Labelled", Data: []byte(raw)}})
	if !assert.NoError(t, err) {
		return labelled{Owner: new("")}
	}
	return v.(labelled)
}

// TestDefaultFieldIsNotShared: decoding a current-shape event, or changing a
// decoded event, does not change the default later old-shape events read:
// each decode has its own copy of a map, slice or pointer default.
func TestDefaultFieldIsNotShared(t *testing.T) {
	t.Parallel()
	old := labelled{Attrs: map[string]string{}, Labels: []string{"none"}, Owner: new("nobody")}
	require.Equal(t, old, decodeLabelled(t, `{}`))

	current := decodeLabelled(t, `{"attrs":{"color":"red"},"labels":["x"],"owner":"ann"}`)
	require.Equal(t, labelled{Attrs: map[string]string{"color": "red"}, Labels: []string{"x"}, Owner: new("ann")}, current)
	require.Equal(t, old, decodeLabelled(t, `{}`), "the current document was not decoded into the default")

	got := decodeLabelled(t, `{}`)
	got.Attrs["size"], got.Labels[0], *got.Owner = "L", "changed", "mallory"
	require.Equal(t, old, decodeLabelled(t, `{}`), "a caller's change to its event is its own")
}

// TestDefaultFieldConcurrentDecodes: decodes of both shapes at once, which
// wrote into one shared map before (-race, or a fatal concurrent map write).
func TestDefaultFieldConcurrentDecodes(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if (w+i)%2 == 0 {
					got := decodeLabelled(t, fmt.Sprintf(`{"attrs":{"w%d":"%d"},"labels":["%d"],"owner":"w%d"}`, w, i, i, w))
					assert.Equal(t, map[string]string{fmt.Sprintf("w%d", w): fmt.Sprint(i)}, got.Attrs)
					continue
				}
				got := decodeLabelled(t, `{}`)
				assert.Empty(t, got.Attrs)
				assert.Equal(t, []string{"none"}, got.Labels)
				assert.Equal(t, "nobody", *got.Owner)
			}
		})
	}
	wg.Wait()
}

// TestRegistryVerify: an event that did not come from Encode passes Verify
// only when it is what Encode makes of its decoded value: the tags its data
// gives, each there, and no other tag under a key the registry declares.
// Tags under other keys are free.
func TestRegistryVerify(t *testing.T) {
	t.Parallel()
	cart, product, other := uuid.New(), uuid.New(), uuid.New()
	item, err := registry.Encode(itemAdded{CartID: cart, ProductID: product, Price: "1"})
	require.NoError(t, err)
	withTags := func(tags ...string) eventstore.Event {
		return eventstore.Event{Type: item.Type, Tags: tags, Data: item.Data}
	}
	cartTag, productTag := "cart_id:"+cart.String(), "product_id:"+product.String()

	for name, e := range map[string]eventstore.Event{
		"AsEncoded":   item,
		"OtherOrder":  withTags(productTag, cartTag),
		"FreeKey":     withTags(cartTag, "batch:7", productTag, "untagged"),
		"TagFromData": {Type: "Registered", Tags: []string{"email_hash:abc", "user_id:" + cart.String()}, Data: []byte(`{"user_id":"` + cart.String() + `"}`)},
	} {
		require.NoError(t, registry.Verify(e), name)
	}

	for name, c := range map[string]struct {
		e   eventstore.Event
		msg string
	}{
		"OtherCart":        {withTags("cart_id:"+other.String(), productTag), `the data of this ItemAdded gives the tag "cart_id:` + cart.String() + `", which is missing`},
		"SecondCart":       {withTags(cartTag, productTag, "cart_id:"+other.String()), `the tag "cart_id:` + other.String() + `" is not one of this ItemAdded's own`},
		"CaseOfTheUUID":    {withTags("cart_id:"+strings.ToUpper(cart.String()), productTag, cartTag), `the tag "cart_id:` + strings.ToUpper(cart.String())},
		"KeyOfAnotherType": {withTags(cartTag, productTag, "user_id:"+other.String()), `the tag "user_id:` + other.String() + `" is not one`},
		"SecondEmailHash":  {eventstore.Event{Type: "Registered", Tags: []string{"email_hash:abc", "user_id:" + cart.String(), "email_hash:def"}, Data: []byte(`{"user_id":"` + cart.String() + `"}`)}, `the tag "email_hash:def"`},
	} {
		err := registry.Verify(c.e)
		require.ErrorIs(t, err, eventstore.ErrTagsDisagree, name)
		require.ErrorContains(t, err, c.msg, name)
	}

	err = registry.Verify(eventstore.Event{Type: "ItemAdded", Tags: []string{productTag}, Data: []byte(`{"product_id":"` + product.String() + `"}`)})
	require.ErrorContains(t, err, "tag field CartID is empty", "data without its tag field")
	require.NotErrorIs(t, err, eventstore.ErrTagsDisagree)
	err = registry.Verify(eventstore.Event{Type: "ItemAdded", Tags: []string{cartTag, productTag}, Data: []byte(`{"cart_id":1}`)})
	require.ErrorContains(t, err, "decode ItemAdded")
	require.ErrorIs(t, registry.Verify(eventstore.Event{Type: "Unknown", Data: []byte("x")}), eventstore.ErrUnknownEventType)
}

// doubled keeps a rule beyond its tags: Double is twice N.
type doubled struct {
	N      int `json:"n" tag:"n"`
	Double int `json:"double"`
}

func (d doubled) Validate() error {
	if d.Double != 2*d.N {
		return fmt.Errorf("double is %d, not twice %d", d.Double, d.N)
	}
	return nil
}

// TestRegistryVerifyValidates: Verify calls Validate on a value that has it,
// after the tags agree; Encode does not.
func TestRegistryVerifyValidates(t *testing.T) {
	t.Parallel()
	r := eventstore.NewRegistry(eventstore.Type[doubled]("Doubled"))
	require.NoError(t, r.Verify(eventstore.Event{Type: "Doubled", Tags: []string{"n:2"}, Data: []byte(`{"n":2,"double":4}`)}))
	err := r.Verify(eventstore.Event{Type: "Doubled", Tags: []string{"n:2"}, Data: []byte(`{"n":2,"double":5}`)})
	require.EqualError(t, err, "eventstore: Doubled: double is 5, not twice 2")
	require.NotErrorIs(t, err, eventstore.ErrTagsDisagree)
	_, err = r.Encode(doubled{N: 2, Double: 5})
	require.NoError(t, err, "the application's own values are not validated again")
}

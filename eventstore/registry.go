package eventstore

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// An Upcaster reads an older shape of an event's stored data as the current
// one. Stored events are never rewritten; upcasters apply on every read, in
// the order given to Type, and must leave a current-shape document as it is.
// Two kinds exist: UpcastJSON, any rewrite of the JSON document, and
// DefaultField, the usual case of a field added later, which costs nothing.
type Upcaster interface {
	apply(t reflect.Type, et *eventType)
}

// UpcastJSON returns an upcaster that rewrites the stored JSON document.
func UpcastJSON(f func(data []byte) ([]byte, error)) Upcaster { return jsonUpcaster(f) }

type jsonUpcaster func([]byte) ([]byte, error)

func (u jsonUpcaster) apply(_ reflect.Type, et *eventType) { et.upcasters = append(et.upcasters, u) }

// TypeDef declares one event type for NewRegistry; see Type.
type TypeDef struct {
	name      string
	goType    reflect.Type
	upcasters []Upcaster
}

// Type declares that values of the struct type T are stored under name, with
// upcasters applied when reading. T's fields become JSON through
// encoding/json; a field with a struct tag `tag:"key"` becomes the event tag
// "key:<value>" (see Tag). A tag field kept out of the JSON (`json:"-"`), for
// a tag that is not part of the event's data, is filled from the stored
// event's tag when decoding; it must then be a string or implement
// encoding.TextUnmarshaler.
func Type[T any](name string, upcasters ...Upcaster) TypeDef {
	return TypeDef{name: name, goType: reflect.TypeFor[T](), upcasters: upcasters}
}

// Registry maps Go event types to stored types and tags, and back. It is
// immutable after NewRegistry and safe for concurrent use.
type Registry struct {
	byName map[string]*eventType
	byType map[reflect.Type]*eventType
	keys   map[string]bool // every tag key a type declares
}

type eventType struct {
	TypeDef
	tagFields []tagField
	upcasters []jsonUpcaster
	// defaults are set before decoding; JSON that has the field overwrites them.
	defaults []fieldDefault
}

type fieldDefault struct {
	index int
	value reflect.Value
	// json, when set, is value's encoding, decoded afresh into each event:
	// value holds memory (a map, a slice, a pointer) that decoding, or
	// whoever receives the event, would otherwise write into for everybody.
	json []byte
}

type tagField struct {
	index int
	key   string
	// fromTags: not in the JSON, so decoded from the stored tag.
	fromTags bool
}

var (
	// ErrUnknownEventType is returned when encoding a value or decoding an
	// event whose type is not registered.
	ErrUnknownEventType = errors.New("eventstore: unknown event type")

	// ErrTagsDisagree is matched by Verify's error when an event's tags are
	// not those its data gives.
	ErrTagsDisagree = errors.New("eventstore: tags disagree with the data")
)

// NewRegistry builds a registry from type declarations. It panics on wiring
// mistakes: a name or Go type declared twice, a non-struct type, a tag key
// that is empty or contains ':'.
func NewRegistry(defs ...TypeDef) *Registry {
	r := &Registry{byName: map[string]*eventType{}, byType: map[reflect.Type]*eventType{}, keys: map[string]bool{}}
	for _, d := range defs {
		if d.goType.Kind() != reflect.Struct {
			panic(fmt.Sprintf("eventstore: event type %s: %s is not a struct", d.name, d.goType))
		}
		if err := checkString("type", d.name, DefaultLimits.MaxTypeBytes); err != nil {
			panic(fmt.Sprintf("eventstore: event type %q: %v", d.name, err))
		}
		if _, dup := r.byName[d.name]; dup {
			panic("eventstore: event type declared twice: " + d.name)
		}
		if _, dup := r.byType[d.goType]; dup {
			panic(fmt.Sprintf("eventstore: Go type %s declared twice", d.goType))
		}
		et := &eventType{TypeDef: d}
		for i := range d.goType.NumField() {
			key, ok := d.goType.Field(i).Tag.Lookup("tag")
			if !ok {
				continue
			}
			if key == "" || strings.Contains(key, ":") {
				panic(fmt.Sprintf("eventstore: event type %s: field %s: bad tag key %q", d.name, d.goType.Field(i).Name, key))
			}
			f := d.goType.Field(i)
			fromTags := f.Tag.Get("json") == "-"
			if fromTags && f.Type.Kind() != reflect.String && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
				panic(fmt.Sprintf("eventstore: event type %s: field %s is decoded from its tag, so it must be a string or an encoding.TextUnmarshaler", d.name, f.Name))
			}
			et.tagFields = append(et.tagFields, tagField{index: i, key: key, fromTags: fromTags})
			r.keys[key] = true
		}
		for _, up := range d.upcasters {
			up.apply(d.goType, et)
		}
		r.byName[d.name] = et
		r.byType[d.goType] = et
	}
	return r
}

// Tag returns the tag "key:value", the one spelling of tags used by the
// registry and by queries. value is formatted with fmt (a Stringer's String).
func Tag(key string, value any) string {
	return key + ":" + fmt.Sprint(value)
}

// TypeOf returns the stored type name of the event value v (a registered
// struct, not a pointer). It panics when v's type is not registered: that is
// a wiring mistake, not an input error.
func (r *Registry) TypeOf(v any) string {
	et, ok := r.byType[reflect.TypeOf(v)]
	if !ok {
		panic(fmt.Sprintf("eventstore: %T is not a registered event type", v))
	}
	return et.name
}

// TypesOf returns TypeOf of each value, for building queries.
func (r *Registry) TypesOf(vs ...any) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = r.TypeOf(v)
	}
	return names
}

// Encode turns an event value into an Event: its registered type name, the
// tags declared on its fields and its JSON. A tag field holding its zero value
// is an error: an event must not land in an empty boundary.
func (r *Registry) Encode(v any) (Event, error) {
	et, ok := r.byType[reflect.TypeOf(v)]
	if !ok {
		return Event{}, fmt.Errorf("%w: %T", ErrUnknownEventType, v)
	}
	tags, err := et.tags(v)
	if err != nil {
		return Event{}, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Event{}, fmt.Errorf("eventstore: encode %s: %w", et.name, err)
	}
	return Event{Type: et.name, Tags: tags, Data: data}, nil
}

// tags returns the tags declared on v's fields, v being of type et.
func (et *eventType) tags(v any) ([]string, error) {
	rv := reflect.ValueOf(v)
	tags := make([]string, 0, len(et.tagFields))
	for _, f := range et.tagFields {
		fv := rv.Field(f.index)
		if fv.IsZero() {
			return nil, fmt.Errorf("eventstore: encode %s: tag field %s is empty", et.name, et.goType.Field(f.index).Name)
		}
		tags = append(tags, Tag(f.key, fv.Interface()))
	}
	return tags, nil
}

// EncodeAll encodes each value; see Encode.
func (r *Registry) EncodeAll(vs []any) ([]Event, error) {
	events := make([]Event, len(vs))
	for i, v := range vs {
		e, err := r.Encode(v)
		if err != nil {
			return nil, err
		}
		events[i] = e
	}
	return events, nil
}

// Decode returns the Go value (of the registered struct type, not a pointer)
// of a stored event, after running its type's upcasters.
func (r *Registry) Decode(e StoredEvent) (any, error) {
	return r.decode(e.Type, e.Tags, e.Data)
}

func (r *Registry) decode(typ string, tags []string, data []byte) (any, error) {
	et, ok := r.byName[typ]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, typ)
	}
	var err error
	for _, up := range et.upcasters {
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("eventstore: upcast %s: %w", typ, err)
		}
	}
	p := reflect.New(et.goType)
	for _, d := range et.defaults {
		if d.json == nil {
			p.Elem().Field(d.index).Set(d.value)
			continue
		}
		v := reflect.New(d.value.Type())
		if err := json.Unmarshal(d.json, v.Interface()); err != nil {
			return nil, fmt.Errorf("eventstore: decode %s: default of field %s: %w", typ, et.goType.Field(d.index).Name, err)
		}
		p.Elem().Field(d.index).Set(v.Elem())
	}
	if err := json.Unmarshal(data, p.Interface()); err != nil {
		return nil, fmt.Errorf("eventstore: decode %s: %w", typ, err)
	}
	for _, f := range et.tagFields {
		if f.fromTags {
			if err := setFromTag(p.Elem().Field(f.index), f.key, tags); err != nil {
				return nil, fmt.Errorf("eventstore: decode %s: %w", typ, err)
			}
		}
	}
	return p.Elem().Interface(), nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func setFromTag(field reflect.Value, key string, tags []string) error {
	for _, tag := range tags {
		value, ok := strings.CutPrefix(tag, key+":")
		if !ok {
			continue
		}
		if u, ok := field.Addr().Interface().(encoding.TextUnmarshaler); ok {
			if err := u.UnmarshalText([]byte(value)); err != nil {
				return fmt.Errorf("tag %s: %w", key, err)
			}
			return nil
		}
		field.SetString(value)
		return nil
	}
	return fmt.Errorf("tag %s: missing from the stored event", key)
}

// Verify checks an event that reaches the log other than through Encode
// (an operator's append) against its registered type: its data must decode
// as Decode decodes it, and its tags must be those Encode gives for the
// decoded value. Every such tag must be there, and no other tag may have a
// key the registry declares: an event whose tag says one cart and whose
// data another would be folded into the wrong decisions. Tags of other
// keys are the caller's. A value that is a Validator must also pass its
// Validate. The error matches ErrUnknownEventType for a type r does not
// declare, ErrTagsDisagree for tags, and is the decode, tag (an empty tag
// field) or Validate error otherwise.
func (r *Registry) Verify(e Event) error {
	v, err := r.decode(e.Type, e.Tags, e.Data)
	if err != nil {
		return err
	}
	want, err := r.byName[e.Type].tags(v)
	if err != nil {
		return err
	}
	for _, tag := range want {
		if !slices.Contains(e.Tags, tag) {
			return fmt.Errorf("%w: the data of this %s gives the tag %q, which is missing", ErrTagsDisagree, e.Type, tag)
		}
	}
	for _, tag := range e.Tags {
		if key, _, ok := strings.Cut(tag, ":"); ok && r.keys[key] && !slices.Contains(want, tag) {
			return fmt.Errorf("%w: the tag %q is not one of this %s's own (%s)", ErrTagsDisagree, tag, e.Type, strings.Join(want, ", "))
		}
	}
	if v, ok := v.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("eventstore: %s: %w", e.Type, err)
		}
	}
	return nil
}

// A Validator is an event type with rules beyond its tags that its values
// keep, such as a tag field that must be a hash of another field. Encode
// does not call Validate (the application's own values keep them); Verify
// does.
type Validator interface {
	Validate() error
}

// HasTagKey reports whether a type of r declares the tag key.
func (r *Registry) HasTagKey(key string) bool { return r.keys[key] }

// DefaultField returns an upcaster for a field added to an event after some
// were stored: documents without the field (JSON name) read as if it held
// value. It does not touch the JSON: the field is set before decoding, and
// a document that has it is decoded into it as encoding/json decodes into a
// value already set: merged into a map or a struct (pointed to or not),
// replacing anything else. Each decoded event gets its own copy: a value of
// a kind other than bool, number or string is kept as its JSON encoding and
// decoded afresh for every event, so that no event shares a map, slice or
// pointer with another. NewRegistry panics when the type has no such field,
// value does not fit it, or value does not encode to JSON and decode back.
func DefaultField(field string, value any) Upcaster { return fieldUpcaster{field, value} }

type fieldUpcaster struct {
	field string
	value any
}

func (u fieldUpcaster) apply(t reflect.Type, et *eventType) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name != u.field {
			continue
		}
		v := reflect.ValueOf(u.value)
		if !v.IsValid() || !v.Type().AssignableTo(f.Type) {
			panic(fmt.Sprintf("eventstore: DefaultField %s of %s: %T does not fit %s", u.field, t, u.value, f.Type))
		}
		d := fieldDefault{index: i, value: v}
		switch v.Kind() {
		case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			// Set copies it.
		default:
			b, err := json.Marshal(u.value)
			if err == nil {
				err = json.Unmarshal(b, reflect.New(v.Type()).Interface())
			}
			if err != nil {
				panic(fmt.Sprintf("eventstore: DefaultField %s of %s: %v", u.field, t, err))
			}
			d.json = b
		}
		et.defaults = append(et.defaults, d)
		return
	}
	panic(fmt.Sprintf("eventstore: DefaultField %s: %s has no such field", u.field, t))
}

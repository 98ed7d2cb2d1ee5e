package eventstore

import (
	"hash/fnv"
	"slices"
)

// A Query selects events: it matches an event when any of its items does.
// A query with no items matches every event.
type Query struct {
	Items []QueryItem
}

// A QueryItem matches an event whose type is one of Types (any type when Types
// is empty) and that carries every tag in Tags (any tags when Tags is empty).
type QueryItem struct {
	Types []string
	Tags  []string
}

// All is the query that matches every event.
var All = Query{}

// Matches reports whether an event of type typ with the given tags matches q.
func (q Query) Matches(typ string, tags []string) bool {
	if len(q.Items) == 0 {
		return true
	}
	for _, it := range q.Items {
		if it.matches(typ, tags) {
			return true
		}
	}
	return false
}

func (it QueryItem) matches(typ string, tags []string) bool {
	if len(it.Types) > 0 && !slices.Contains(it.Types, typ) {
		return false
	}
	for _, want := range it.Tags {
		if !slices.Contains(tags, want) {
			return false
		}
	}
	return true
}

// matchesAll reports whether q matches every event, in which case it is
// answered from the log's primary key instead of the lookup keys.
func (q Query) matchesAll() bool {
	if len(q.Items) == 0 {
		return true
	}
	for _, it := range q.Items {
		if len(it.Types) == 0 && len(it.Tags) == 0 {
			return true
		}
	}
	return false
}

// Lookup keys. An event of type T with tags G1..Gn is stored with the keys
// typeKey(T), tagKey(Gi) and typeTagKey(T, Gi) (see migrations/00001_events.sql).
// A query item is found through one family of keys:
//
//	types and tags: typeTagKey(t, g) for each type t and tag g
//	tags only:      tagKey(g) for each tag g
//	types only:     typeKey(t) for each type t
//
// An item of one tag or none is one probe per key, a range of the index. An
// item of several tags is one probe per type (or one), whose keys, one per
// tag, are intersected by a leapfrog join (dcb_leap,
// migrations/00011_dcb_leap.sql): its cost follows the item's rarest tag,
// whichever tag comes first. Every candidate is then checked against the
// whole item, so a hash collision cannot produce a wrong answer.
// Strings cannot contain NUL (validated), so the encodings are unambiguous.

func typeKey(typ string) int64         { return hashKey("t", typ, "") }
func tagKey(tag string) int64          { return hashKey("g", "", tag) }
func typeTagKey(typ, tag string) int64 { return hashKey("tg", typ, tag) }
func hashKey(kind, typ, tag string) int64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(tag))
	return int64(h.Sum64())
}

func eventKeys(typ string, tags []string) []int64 {
	keys := make([]int64, 0, 1+2*len(tags))
	keys = append(keys, typeKey(typ))
	for _, tag := range tags {
		keys = append(keys, tagKey(tag), typeTagKey(typ, tag))
	}
	return keys
}

// probes is a query flattened into the arrays that the read and condition
// statements unnest: one row per probe, each with its lookup key, the 1-based
// ranges of its item's types and tags in the flat Types and Tags arrays, and
// the range in MoreKeys of the keys of its item's other tags (empty, Lo > Hi,
// for an item of at most one tag).
type probes struct {
	Keys             []int64
	TypesLo, TypesHi []int32
	TagsLo, TagsHi   []int32
	Types, Tags      []string
	MoreLo, MoreHi   []int32
	MoreKeys         []int64
}

// probesOf flattens q. It must not be called for a query that matchesAll.
func probesOf(q Query) probes {
	var p probes
	for _, it := range q.Items {
		typesLo, tagsLo := int32(len(p.Types)+1), int32(len(p.Tags)+1)
		p.Types = append(p.Types, it.Types...)
		p.Tags = append(p.Tags, it.Tags...)
		typesHi, tagsHi := int32(len(p.Types)), int32(len(p.Tags))
		add := func(key int64, more ...int64) {
			p.Keys = append(p.Keys, key)
			p.TypesLo, p.TypesHi = append(p.TypesLo, typesLo), append(p.TypesHi, typesHi)
			p.TagsLo, p.TagsHi = append(p.TagsLo, tagsLo), append(p.TagsHi, tagsHi)
			p.MoreLo = append(p.MoreLo, int32(len(p.MoreKeys)+1))
			p.MoreKeys = append(p.MoreKeys, more...)
			p.MoreHi = append(p.MoreHi, int32(len(p.MoreKeys)))
		}
		switch {
		case len(it.Types) > 0 && len(it.Tags) > 0:
			for _, typ := range it.Types {
				var more []int64
				for _, tag := range it.Tags[1:] {
					more = append(more, typeTagKey(typ, tag))
				}
				add(typeTagKey(typ, it.Tags[0]), more...)
			}
		case len(it.Tags) > 0:
			var more []int64
			for _, tag := range it.Tags[1:] {
				more = append(more, tagKey(tag))
			}
			add(tagKey(it.Tags[0]), more...)
		default:
			for _, typ := range it.Types {
				add(typeKey(typ))
			}
		}
	}
	return p
}
